import Foundation
import SplitConfig

/// One line per event on stderr: time, level, and the message (with a session id where there is one).
enum Log {
    nonisolated(unsafe) static var verbose = false  // set once at start, before any thread reads it
    nonisolated(unsafe) static var format = LogFormat.text  // likewise

    static func info(_ message: @autoclosure () -> String) { write("INFO", message()) }
    static func warning(_ message: @autoclosure () -> String) { write("WARNING", message()) }
    static func error(_ message: @autoclosure () -> String) { write("ERROR", message()) }
    static func debug(_ message: @autoclosure () -> String) { if verbose { write("DEBUG", message()) } }

    private static func write(_ level: String, _ message: String) {
        let line: String
        switch format {
        case .text:
            line = "\(timestamp()) \(level) \(message)\n"
        case .json:
            line = "{\"time\":\"\(timestamp())\",\"level\":\"\(level)\",\"message\":\(jsonString(message))}\n"
        }
        FileHandle.standardError.write(Data(line.utf8))
    }

    private static func jsonString(_ text: String) -> String {
        var out = "\""
        for scalar in text.unicodeScalars {
            switch scalar {
            case "\"": out += "\\\""
            case "\\": out += "\\\\"
            case "\n": out += "\\n"
            case "\r": out += "\\r"
            case "\t": out += "\\t"
            default:
                if scalar.value < 0x20 { out += String(format: "\\u%04x", scalar.value) } else { out.unicodeScalars.append(scalar) }
            }
        }
        return out + "\""
    }

    private static func timestamp() -> String {
        var tv = timeval()
        gettimeofday(&tv, nil)
        var tm = tm()
        var seconds = tv.tv_sec
        gmtime_r(&seconds, &tm)
        return String(format: "%04d-%02d-%02d %02d:%02d:%02d.%03d UTC", tm.tm_year + 1900, tm.tm_mon + 1, tm.tm_mday,
                      tm.tm_hour, tm.tm_min, tm.tm_sec, Int(tv.tv_usec / 1000))
    }
}
