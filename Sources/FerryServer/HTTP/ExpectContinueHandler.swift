import Foundation
import HTTPTypes
import NIOCore
import NIOHTTPTypes

/// Answers `Expect: 100-continue` with an interim `100 Continue` as soon as the request's
/// head arrives. Hummingbird sends no interim answer, so `curl -T`, and any client that asks
/// before sending a body, waited out its own timer (curl's is one second) before every
/// upload. Added behind the HTTP codec of each HTTP/1.1 connection and each HTTP/2 stream,
/// plain and TLS alike; the final answer follows as usual, so a refused request (401, 413)
/// still gets its status, just after the client has begun to send.
final class ExpectContinueHandler: ChannelInboundHandler, RemovableChannelHandler {
    typealias InboundIn = HTTPRequestPart
    typealias InboundOut = HTTPRequestPart
    typealias OutboundOut = HTTPResponsePart

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        if case .head(let head) = unwrapInboundIn(data), Self.expectsContinue(head) {
            context.writeAndFlush(wrapOutboundOut(.head(HTTPResponse(status: .continue))), promise: nil)
        }
        context.fireChannelRead(data)
    }

    /// The request asks for the interim answer (RFC 9110 §10.1.1: the token is case-insensitive).
    static func expectsContinue(_ head: HTTPRequest) -> Bool {
        head.headerFields[values: .expect].contains { $0.trimmingCharacters(in: .whitespaces).lowercased() == "100-continue" }
    }
}
