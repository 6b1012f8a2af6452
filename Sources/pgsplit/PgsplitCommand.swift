import ArgumentParser
import DispatchTransport
import Foundation
import SplitConfig

@main
struct PgsplitCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "pgsplit",
        abstract: "A PostgreSQL proxy that sends reads to main and writes to the writeable backend.")

    @Option(name: .shortAndLong, help: "The configuration file.")
    var config = "proxy.conf"

    @Flag(help: "Run the startup checks and exit: 0 when pgsplit would start.")
    var check = false

    @Flag(name: .shortAndLong, help: "Log debugging detail.")
    var verbose = false

    func run() throws {
        Log.verbose = verbose
        let status = Runner.run(configPath: config, checkOnly: check)
        // Every way out once the checks have run (`--check`, a refusal) leaves as the running proxy
        // does, without exit-time cleanup: OpenSSL frees its global state in an atexit handler while an
        // event-loop thread may still be closing a check's TLS connection (seen: "double free or
        // corruption" after `--check` passed).
        fflush(nil)
        _exit(status)
    }
}

/// Start-up and the process's life, kept out of the command type so nothing here runs on the main actor.
enum Runner {
    static func run(configPath: String, checkOnly: Bool) -> Int32 {
        Transport.returnLargeBlocksOnFree()
        Transport.ignoreSIGPIPE()
        // Block the signals before any thread exists, so every thread inherits the mask and only the
        // main thread's sigwait ever takes them.
        pthread_sigmask(SIG_BLOCK, &handledSignals, nil)
        let config: ProxyConfig
        do {
            config = try ProxyConfig.load(path: configPath)
        } catch {
            refuse("\(error)")
            return 2
        }
        Log.format = config.operations.logFormat
        for warning in config.tlsWarnings() { Log.warning(warning) }
        if case .failure(let error)? = ClientTLS.context(config.clientTLS) {
            refuse("client TLS: \(error)")
            return 1
        }
        let group = EventLoopGroup(loopCount: config.workerCount(processorCount: EventLoopGroup.coreCount))
        let outcome = StartupChecks.run(config: config, group: group)
        for warning in outcome.warnings { Log.warning(warning) }
        if !outcome.refusals.isEmpty {
            for refusal in outcome.refusals { refuse(refusal) }
            return 1
        }
        if checkOnly {
            Log.info("configuration \(configPath) passed every check")
            return 0
        }
        let server = ProxyServer(config: config, configPath: configPath, group: group, policies: outcome.policies)
        do {
            try server.start()
        } catch {
            refuse("cannot listen: \(error)")
            return 1
        }
        for database in config.databases {
            Log.info("database \"\(database.name)\": main \(database.main.label)"
                     + (database.writeable.map { ", writeable \($0.label)" } ?? ", no writeable backend: everything goes to main"))
        }
        let status = waitForSignal(server)
        // Leave without running exit-time cleanup: OpenSSL frees its global locks in an atexit
        // handler while event-loop threads may still be in a TLS or SCRAM call.
        fflush(nil)  // every stdio stream (logs go through FileHandle, unbuffered, anyway)
        _exit(status)
    }

    /// SIGTERM (or SHUTDOWN on the console): stop accepting, let every transaction in progress finish
    /// up to shutdown_timeout, close sessions as they become idle, then exit. A second SIGTERM or a
    /// SIGINT cuts the wait short.
    static func shutDownGracefully(_ server: ProxyServer) -> Int32 {
        let timeout = StartupChecks.seconds(server.config.operations.shutdownTimeout)
        Log.info("shutting down: \(server.sessionCount) sessions; waiting up to \(Int(timeout)) s for transactions to finish")
        server.beginShutdown()
        let deadline = ContinuousClock.now + .milliseconds(Int(timeout * 1000))
        var set = sigset_t()
        sigemptyset(&set)
        sigaddset(&set, SIGINT)
        sigaddset(&set, SIGTERM)
        while server.sessionCount > 0 && ContinuousClock.now < deadline {
            var pending = sigset_t()
            sigpending(&pending)
            if sigismember(&pending, SIGINT) == 1 || sigismember(&pending, SIGTERM) == 1 { break }
            usleep(20_000)
        }
        let left = server.sessionCount
        if left > 0 { Log.warning("shutdown: closing \(left) sessions still busy") }
        Log.info("pgsplit stopped")
        return 0
    }

    static func refuse(_ reason: String) {
        FileHandle.standardError.write(Data("pgsplit: refusing to start: \(reason)\n".utf8))
    }

    /// Blocks the main thread until SIGINT or SIGTERM, then stops listening and exits.
    nonisolated(unsafe) static var handledSignals: sigset_t = {  // written once, before any thread starts
        var set = sigset_t()
        sigemptyset(&set)
        sigaddset(&set, SIGINT)
        sigaddset(&set, SIGTERM)
        sigaddset(&set, SIGHUP)
        return set
    }()

    static func waitForSignal(_ server: ProxyServer) -> Int32 {
        var set = handledSignals
        while true {
            var signal: Int32 = 0
            sigwait(&set, &signal)
            switch signal {
            case SIGHUP:
                switch server.reload() {
                case .success(let summary): Log.info("SIGHUP: configuration reloaded: \(summary)")
                case .failure(let failure): Log.error("SIGHUP: reload refused, the running configuration stays in force: \(failure)")
                }
            case SIGINT:
                Log.info("SIGINT: closing at once (\(server.sessionCount) sessions)")
                server.stopListening()
                return 0
            default:
                return shutDownGracefully(server)
            }
        }
    }
}
