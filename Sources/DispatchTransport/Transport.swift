import CSocketShim
#if canImport(Glibc)
import Glibc
#endif

/// Process-wide settings the transport relies on.
public enum Transport {
    /// Writing to a socket the peer has closed must fail with EPIPE, not kill the process.
    /// Sends also pass MSG_NOSIGNAL; this covers any other write path (and libraries such as TLS).
    public static func ignoreSIGPIPE() {
        signal(SIGPIPE, SIG_IGN)
    }

    /// The buffer of a large message (a 30 MB query) is freed once it is passed on, but glibc raises
    /// its mmap threshold to the size of each large block freed and then keeps blocks that size in its
    /// heap, so the memory never went back to the system. A fixed threshold keeps large blocks mapped,
    /// and freeing them returns them.
    public static func returnLargeBlocksOnFree() {
        _ = pgsplit_fix_mmap_threshold(256 * 1024)
    }
}
