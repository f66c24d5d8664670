/// Loopback sockets and seeded randomness live in FerryHarness, which ferry-bench shares;
/// the test targets reach them through this module, as before.
@_exported import FerryHarness
