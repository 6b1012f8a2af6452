import Foundation

extension ProxyConfig {
    /// Reads and parses the file at `path`, then the auth_file it names (a relative auth_file path is
    /// relative to the config file's folder). Messages name `path` as given.
    public static func load(path: String) throws -> ProxyConfig {
        let text = try readText(path: path) { reason in
            ConfigError(file: path, line: nil, reason: "cannot read the configuration: \(reason)")
        }
        var parsed = try ProxyConfigParser(fileName: path).parse(text: text)
        // TLS files, like auth_file, are relative to the configuration's folder.
        var tls = parsed.config.clientTLS
        tls.certificateFile = tls.certificateFile.map { resolve($0, relativeTo: path) }
        tls.keyFile = tls.keyFile.map { resolve($0, relativeTo: path) }
        tls.caFile = tls.caFile.map { resolve($0, relativeTo: path) }
        if tls != parsed.config.clientTLS {
            var config = parsed.config
            config.clientTLS = tls
            parsed = ParsedProxyConfig(config: config, authFileLine: parsed.authFileLine)
        }
        guard let authFile = parsed.config.authFile else { return parsed.config }

        let resolved = resolve(authFile, relativeTo: path)
        let userlistText = try readText(path: resolved) { reason in
            ConfigError(file: path, line: parsed.authFileLine, section: "pgsplit", key: "auth_file",
                        reason: "cannot read \"\(resolved)\": \(reason)")
        }
        let userlist = try Userlist.parse(text: userlistText, fileName: resolved)
        return parsed.config.with(authFile: resolved, userlist: userlist)
    }

    /// Warnings about the TLS files that do not stop the proxy: a private key that group or others
    /// may read (PostgreSQL refuses such a key; the proxy only warns). One line each.
    /// Also covers auth_file, which holds the users' secrets.
    public func tlsWarnings() -> [String] {
        var warnings: [String] = []
        func check(_ key: String, _ path: String?) {
            guard let path, let attributes = try? FileManager.default.attributesOfItem(atPath: path),
                  let permissions = (attributes[.posixPermissions] as? NSNumber)?.intValue,
                  permissions & 0o077 != 0 else { return }
            warnings.append("\(key) \"\(path)\" can be read by group or others (mode \(String(permissions & 0o777, radix: 8))); make it private, e.g. chmod 600")
        }
        if clientTLS.mode != .disable { check("client_tls_key_file", clientTLS.keyFile) }
        check("auth_file", authFile)
        return warnings
    }

    /// `file` as a path usable from the working directory: absolute paths stay, others are taken
    /// from the folder of `configPath`.
    static func resolve(_ file: String, relativeTo configPath: String) -> String {
        guard !file.hasPrefix("/") else { return file }
        let configFolder = (configPath as NSString).deletingLastPathComponent
        return configFolder.isEmpty ? file : (configFolder as NSString).appendingPathComponent(file)
    }

    private static func readText(path: String, failure: (String) -> ConfigError) throws -> String {
        let data: Data
        do {
            data = try Data(contentsOf: URL(fileURLWithPath: path))
        } catch {
            let reason = (error as NSError).localizedFailureReason ?? (error as NSError).localizedDescription
            throw failure(reason)
        }
        guard let text = String(data: data, encoding: .utf8) else { throw failure("not valid UTF-8") }
        return text
    }
}
