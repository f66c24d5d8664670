import Hummingbird

/// The web dashboard (SPEC §7): HTML pages at `/`, beside the JSON API under `/api/v1`.
/// Signed-out routes (sign-in, the assets) and signed-in pages get the same middleware, the
/// latter requiring a session.
struct DashboardRoutes {
    let services: ServerServices

    func add(to router: Router<FerryRequestContext>) {
        let open = router.group().add(middleware: DashboardMiddleware(services: services, requireSession: false))
        DashboardAssets.add(to: open)
        SignInPages(services: services).addOpen(to: open)
        let pages = router.group().add(middleware: DashboardMiddleware(services: services, requireSession: true))
        SignInPages(services: services).addSignedIn(to: pages)
        LibraryPages(services: services).add(to: pages)
        RetentionPages(services: services).add(to: pages)
        FilePages(services: services).add(to: pages)
        MemberPages(services: services).add(to: pages)
        LiveUpdates(services: services).add(to: pages)
        DevicePages(services: services).add(to: pages)
        ConflictPages(services: services).add(to: pages)
        TaskPages(services: services).add(to: pages)
        WebhookPages(services: services).add(to: pages)
        AdminPages(services: services).add(to: pages)
    }
}
