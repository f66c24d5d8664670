import ArgumentParser
import FerryClient
import FerryCore
import Foundation
import Logging
import ServiceLifecycle
import UnixSignals

/// `ferryd`: the sync daemon, in the foreground (systemd runs it as a user service).
@main
struct FerrydCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "ferryd", abstract: "Keeps this device's Ferry folders in sync with the server.",
        version: FerryVersion.description)

    @Option(help: "Configuration file (default: $XDG_CONFIG_HOME/ferry/config.json).") var config: String?
    @Option(help: "Log level: trace, debug, info, notice, warning, error.") var logLevel: String = "info"

    func run() async throws {
        umask(0o077)
        let level = Logger.Level(rawValue: logLevel) ?? .info
        LoggingSystem.bootstrap { label in
            var handler = StreamLogHandler.standardError(label: label)
            handler.logLevel = level
            return handler
        }
        let logger = Logger(label: "ferryd")
        let locations = ClientLocations.standard(configFile: config)
        let configuration: ClientConfig
        do { configuration = try ClientConfig.load(from: locations.configFile) } catch {
            logger.error("\(error)")
            throw ExitCode.failure
        }
        if configuration.folders.isEmpty {
            logger.warning("no folders configured; add one with 'ferry folder add DIR'")
        }
        let daemon = FerryDaemon(config: configuration, locations: locations, logger: logger)
        // SIGTERM/SIGINT shut the daemon down gracefully: loops stopped, socket removed, index closed.
        let group = ServiceGroup(configuration: .init(services: [daemon], gracefulShutdownSignals: [.sigterm, .sigint], logger: logger))
        do { try await group.run() } catch {
            logger.error("\(error)")
            throw ExitCode.failure
        }
        logger.info("ferryd stopped")
    }
}
