extension ProxyConfig {
    /// Combinations that parse but cannot work, each as one line for the operator. Empty when fine.
    /// Startup refuses to run, and reload keeps the old configuration, while this is not empty.
    public func validationProblems() -> [String] {
        var problems: [String] = []
        problems.append(contentsOf: clientTLSProblems())
        if authType != .trust, authType != .cert, authFile == nil {
            problems.append("auth_type = \(authType.rawValue) needs an auth_file with the users' secrets; set auth_file or use auth_type = trust")
        }
        for database in databases {
            let name = "database \"\(database.name)\""
            if database.databaseRouting, database.writeable != nil {
                problems.append("\(name): a writeable connection cannot be used with database routing (database_routing = on); remove one of them")
            }
            if !database.databaseRouting, !database.routes.isEmpty {
                let routeKeys = database.routes.keys.sorted().map { "route.\($0)" }.joined(separator: ", ")
                problems.append("\(name): \(routeKeys) set but database_routing is off; set database_routing = on or remove the routes")
            }
            let both = Set(database.readSafeFunctions).intersection(database.writingFunctions).sorted()
            if !both.isEmpty {
                problems.append("\(name): \(both.joined(separator: ", ")) listed both in read_safe_functions and in writing_functions; keep one")
            }
        }
        return problems
    }
}

extension ProxyConfig {
    /// The `client_tls_*` keys that cannot work together, one line each.
    func clientTLSProblems() -> [String] {
        var problems: [String] = []
        let tls = clientTLS
        let hasCertificate = tls.certificateFile != nil
        let hasKey = tls.keyFile != nil
        if hasCertificate != hasKey {
            let missing = hasCertificate ? "client_tls_key_file" : "client_tls_cert_file"
            let given = hasCertificate ? "client_tls_cert_file" : "client_tls_key_file"
            problems.append("\(given) is set but \(missing) is not; TLS for clients needs both")
        } else if tls.mode.requiresTLS, !hasCertificate {
            problems.append("client_tls_sslmode = \(tls.mode.rawValue) needs client_tls_cert_file and client_tls_key_file (the proxy's certificate and key); set them or lower client_tls_sslmode")
        }
        if tls.mode.requiresClientCertificate, tls.caFile == nil {
            problems.append("client_tls_sslmode = \(tls.mode.rawValue) verifies client certificates and needs client_tls_ca_file; set it or use client_tls_sslmode = require")
        }
        if authType == .cert {
            if tls.mode == .disable || !hasCertificate || !hasKey {
                problems.append("auth_type = cert needs TLS for clients: set client_tls_sslmode (require or stronger), client_tls_cert_file and client_tls_key_file")
            } else if tls.caFile == nil {
                problems.append("auth_type = cert needs client_tls_ca_file, the CA that signs the client certificates")
            }
        }
        return problems
    }
}
