/// The Prometheus text exposition format (version 0.0.4) of the registry.
extension ProxyMetrics {
    /// Every metric, with `# HELP` and `# TYPE` lines; histograms as cumulative `_bucket{le=...}`
    /// series plus `_sum` (seconds) and `_count`.
    public func prometheusText() -> String {
        var out = PrometheusWriter()
        out.family("pgsplit_client_connections_accepted_total", .counter, "Client connections accepted.")
        out.sample("pgsplit_client_connections_accepted_total", [], clientsAccepted)
        out.family("pgsplit_client_connections", .gauge, "Client connections open now.")
        out.sample("pgsplit_client_connections", [], clientsCurrent)
        out.family("pgsplit_client_connections_refused_total", .counter, "Clients turned away (too many clients, failed login).")
        out.sample("pgsplit_client_connections_refused_total", [], clientsRefused)

        let targets = databases.flatMap { database in BackendRole.allCases.map { (database.name, database.target($0)) } }
        func labels(_ database: String, _ target: TargetMetrics) -> [(String, String)] {
            [("database", database), ("target", target.role.description)]
        }

        out.family("pgsplit_units_total", .counter,
                   "Client units (a query string, or an extended-protocol batch up to Sync) by where they went and why.")
        for (database, target) in targets {
            for reason in RoutingReason.metricsAll {
                let count = target.units(reason)
                guard count > 0 else { continue }
                out.sample("pgsplit_units_total", labels(database, target) + [("reason", reason.metricsLabel)], count)
            }
        }
        let simple: [(String, String, (TargetMetrics) -> Int64)] = [
            ("pgsplit_unit_errors_total", "Client units that ended with an error.", { $0.errors }),
            ("pgsplit_client_bytes_received_total", "Bytes received from clients and forwarded to this target.", { $0.bytesFromClients }),
            ("pgsplit_client_bytes_sent_total", "Bytes from this target forwarded to clients.", { $0.bytesToClients }),
            ("pgsplit_backend_connections_opened_total", "Backend connections opened (logged in).", { $0.backendConnectionsOpened }),
            ("pgsplit_backend_connections_failed_total", "Backend connections that could not be opened.", { $0.backendConnectionsFailed }),
        ]
        for (name, help, value) in simple {
            out.family(name, .counter, help)
            for (database, target) in targets { out.sample(name, labels(database, target), value(target)) }
        }
        out.family("pgsplit_backend_connections", .gauge, "Backend connections sessions hold now (idle pooled ones not counted).")
        for (database, target) in targets {
            out.sample("pgsplit_backend_connections", labels(database, target), target.backendConnectionsCurrent)
        }

        out.family("pgsplit_unit_duration_seconds", .histogram,
                   "Time from a unit's first byte sent to its backend until its ReadyForQuery.")
        for (database, target) in targets {
            let snapshot = target.latency.snapshot()
            var cumulative: Int64 = 0
            for (index, bound) in LatencyBuckets.boundsMicroseconds.enumerated() {
                cumulative += snapshot.counts[index]
                out.sample("pgsplit_unit_duration_seconds_bucket",
                           labels(database, target) + [("le", PrometheusWriter.seconds(microseconds: bound))], cumulative)
            }
            cumulative += snapshot.counts[LatencyBuckets.boundsMicroseconds.count]
            out.sample("pgsplit_unit_duration_seconds_bucket", labels(database, target) + [("le", "+Inf")], cumulative)
            out.sample("pgsplit_unit_duration_seconds_sum", labels(database, target),
                       text: PrometheusWriter.seconds(microseconds: snapshot.sumMicroseconds))
            out.sample("pgsplit_unit_duration_seconds_count", labels(database, target), cumulative)
        }

        let gauges: [(String, String, TargetMetrics.Field, Bool)] = [
            ("pgsplit_backend_up", "1 when the backend answered its last health check, 0 when it did not.", .up, false),
            ("pgsplit_backend_in_recovery", "pg_is_in_recovery() at the last health check.", .inRecovery, false),
            ("pgsplit_backend_wal_position_bytes",
             "WAL position at the last check: replay position on a standby, current position otherwise.", .walPosition, false),
            ("pgsplit_replica_lag_bytes", "Writeable's WAL position minus main's replay position.", .lagBytes, false),
            ("pgsplit_replica_lag_seconds", "Main's replay delay (0 when it has replayed all it received).", .lagMicroseconds, true),
        ]
        for (name, help, field, microseconds) in gauges {
            let present = targets.compactMap { entry in entry.1.gauge(field).map { (entry.0, entry.1, $0) } }
            guard !present.isEmpty else { continue }
            out.family(name, .gauge, help)
            for (database, target, value) in present {
                if microseconds {
                    out.sample(name, labels(database, target), text: PrometheusWriter.seconds(microseconds: value))
                } else {
                    out.sample(name, labels(database, target), value)
                }
            }
        }
        return out.text
    }
}

struct PrometheusWriter {
    enum Kind: String { case counter, gauge, histogram }
    var text = ""

    mutating func family(_ name: String, _ kind: Kind, _ help: String) {
        text += "# HELP \(name) \(help)\n# TYPE \(name) \(kind.rawValue)\n"
    }

    mutating func sample(_ name: String, _ labels: [(String, String)], _ value: Int64) {
        sample(name, labels, text: String(value))
    }

    mutating func sample(_ name: String, _ labels: [(String, String)], text value: String) {
        text += name
        if !labels.isEmpty {
            text += "{"
            text += labels.map { "\($0.0)=\"\(Self.escape($0.1))\"" }.joined(separator: ",")
            text += "}"
        }
        text += " \(value)\n"
    }

    /// Label values escape backslash, double quote and newline.
    static func escape(_ value: String) -> String {
        var out = ""
        for character in value {
            switch character {
            case "\\": out += "\\\\"
            case "\"": out += "\\\""
            case "\n": out += "\\n"
            default: out.append(character)
            }
        }
        return out
    }

    /// Microseconds as decimal seconds without float noise: 50 -> "0.00005", 2000000 -> "2".
    static func seconds(microseconds: Int64) -> String {
        let negative = microseconds < 0
        let magnitude = microseconds.magnitude
        let whole = magnitude / 1_000_000
        var fraction = String(magnitude % 1_000_000)
        guard fraction != "0" else { return (negative ? "-" : "") + String(whole) }
        fraction = String(repeating: "0", count: 6 - fraction.count) + fraction
        while fraction.hasSuffix("0") { fraction.removeLast() }
        return (negative ? "-" : "") + "\(whole).\(fraction)"
    }
}
