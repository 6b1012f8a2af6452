import ProxyLocks
import DispatchTransport
import Foundation
import PostgresWire
import SplitConfig
import StatementClassifier

/// The checks run at start (and by `--check`): the configuration's own rules, then every backend
/// reached with its credentials and its engine identified. Any refusal is one line.
enum StartupChecks {
    struct Outcome {
        var refusals: [String] = []
        var warnings: [String] = []
        var policies: [String: FunctionPolicy] = [:]
    }

    /// The login the proxy itself uses for a backend: its service user, or — for a backend that
    /// logs in as each client — the first auth_file user whose password is known.
    static func serviceLogin(_ address: BackendAddress, database: DatabaseConfig, config: ProxyConfig) -> BackendLogin? {
        let dbname = address.dbname ?? database.name
        if let user = address.user {
            let credential: BackendCredential = address.password.map { .password($0) } ?? .none
            return BackendLogin(address: address, user: user, database: dbname, credential: credential,
                                parameters: [("application_name", "pgsplit")])
        }
        guard let userlist = config.userlist else { return nil }
        for user in userlist.secrets.keys.sorted() {
            switch userlist[user] {
            case .plain(let password)?:
                return BackendLogin(address: address, user: user, database: dbname, credential: .password(password),
                                    parameters: [("application_name", "pgsplit")])
            case .md5(let hex)?:
                return BackendLogin(address: address, user: user, database: dbname, credential: .md5Hash("md5" + hex),
                                    parameters: [("application_name", "pgsplit")])
            default:
                continue
            }
        }
        return nil
    }

    /// Runs every check; blocks the calling thread (never a loop's queue).
    static func run(config: ProxyConfig, group: EventLoopGroup) -> Outcome {
        var outcome = Outcome()
        outcome.refusals.append(contentsOf: config.validationProblems())
        if !outcome.refusals.isEmpty { return outcome }

        for database in config.databases {
            var engines: [String: BackendEngine] = [:]
            var backends: [(String, BackendAddress)] = [("main", database.main)]
            if let writeable = database.writeable { backends.append(("writeable", writeable)) }
            if database.databaseRouting {
                for (user, address) in database.routes.sorted(by: { $0.key < $1.key }) { backends.append(("route.\(user)", address)) }
            }
            for (role, address) in backends {
                guard let login = serviceLogin(address, database: database, config: config) else {
                    outcome.warnings.append("database \"\(database.name)\": \(role) backend \(address.label) logs in as each client and no auth_file password is known: its engine is checked at the first login")
                    continue
                }
                switch query("SELECT version()", login: login, group: group, timeout: seconds(config.connectTimeout)) {
                case .failure(let failure):
                    outcome.refusals.append("database \"\(database.name)\": \(role) backend \(address.label) as user \"\(login.user)\": \(failure.description)")
                case .success(let result):
                    let version = result.rows.first?.first ?? nil
                    var parameters: [String: String] = [:]
                    for (name, value) in result.info.parameters { parameters[name] = value }
                    engines[role] = BackendEngine.identify(versionFunction: version, parameters: parameters)
                }
            }
            if let main = engines["main"], let writeable = engines["writeable"] {
                switch BackendEngine.compare(main: main, writeable: writeable) {
                case .same: break
                case .differentMajor(let warning): outcome.warnings.append("database \"\(database.name)\": \(warning)")
                case .differentEngine(let refusal): outcome.refusals.append("database \"\(database.name)\": \(refusal)")
                }
            }
            if outcome.refusals.isEmpty {
                let semaphore = DispatchSemaphore(value: 0)
                let box = PolicyBox()
                FunctionCatalog.load(database: database, config: config, on: group.next()) { policy in
                    box.set(policy)
                    semaphore.signal()
                }
                semaphore.wait()
                outcome.policies[database.name] = box.get() ?? FunctionCatalog.policy(database: database, rows: [])
            }
        }
        return outcome
    }

    static func seconds(_ duration: Duration) -> Double {
        Double(duration.components.seconds) + Double(duration.components.attoseconds) / 1e18
    }

    static func query(_ sql: String, login: BackendLogin, group: EventLoopGroup, timeout: Double)
        -> Result<BackendQueryRunner.Result, BackendConnector.Failure> {
        let semaphore = DispatchSemaphore(value: 0)
        let box = ResultBox()
        let loop = group.next()
        loop.execute {
            BackendQueryRunner.run(sql, login: login, on: loop, timeout: max(timeout, 0.5)) { result in
                box.set(result)
                semaphore.signal()
            }
        }
        semaphore.wait()
        return box.get()!
    }
}

import Synchronization

/// Hands a result from a loop to the waiting main thread.
private final class ResultBox: Sendable {
    private let value = Locked<Result<BackendQueryRunner.Result, BackendConnector.Failure>?>(nil)
    func set(_ result: Result<BackendQueryRunner.Result, BackendConnector.Failure>) { value.withLock { $0 = result } }
    func get() -> Result<BackendQueryRunner.Result, BackendConnector.Failure>? { value.withLock { $0 } }
}

private final class PolicyBox: Sendable {
    private let value = Locked<FunctionPolicy?>(nil)
    func set(_ policy: FunctionPolicy?) { value.withLock { $0 = policy } }
    func get() -> FunctionPolicy? { value.withLock { $0 } }
}
