#ifndef PGSPLIT_SOCKET_SHIM_H
#define PGSPLIT_SOCKET_SHIM_H
// Deliberately no _GNU_SOURCE and no sys/socket.h here: Swift would lose SOCK_NONBLOCK / MSG_NOSIGNAL.
// sys/epoll.h is not included either: struct epoll_event is packed on x86_64, so the C side handles it.

#include <stdint.h>

/// accept4 with SOCK_NONBLOCK | SOCK_CLOEXEC, also filling in the peer's address (`address` has room
/// for `*length` bytes; `*length` becomes the address's size): one system call, no getpeername.
/// Returns the new fd or -1 (errno set).
int pgsplit_accept4_peer(int fd, void *address, uint32_t *length);

/// recv(fd, buffer, length, 0) and send(fd, bytes, length, MSG_NOSIGNAL) as plain system calls.
/// glibc's own wrappers are thread-cancellation points and switch asynchronous cancellation on and
/// off around every call; pgsplit never cancels a thread, so that is work for nothing on the path
/// of every message. Return the byte count or -1 (errno set).
long pgsplit_recv(int fd, void *buffer, unsigned long length);
long pgsplit_send(int fd, const void *bytes, unsigned long length);

/// Readiness bits, translated to and from EPOLL* on the C side.
enum {
    PGSPLIT_EPOLL_IN = 1,
    PGSPLIT_EPOLL_OUT = 2,
    PGSPLIT_EPOLL_ERR = 4,
    PGSPLIT_EPOLL_HUP = 8,
};

/// epoll_create1(EPOLL_CLOEXEC).
int pgsplit_epoll_create(void);

/// Level-triggered registration of `fd` for `interest` (PGSPLIT_EPOLL_IN | PGSPLIT_EPOLL_OUT),
/// reporting `token` with each event. `op`: 0 add, 1 modify, 2 delete. Returns 0 or -1 (errno set).
int pgsplit_epoll_update(int epfd, int op, int fd, uint32_t interest, uint64_t token);

/// epoll_wait without blocking; fills up to `capacity` tokens and readiness bits.
/// Returns the number of events or -1 (errno set).
int pgsplit_epoll_poll(int epfd, uint64_t *tokens, uint32_t *readiness, int capacity);

/// epoll_wait that blocks up to `timeout_ms` (-1: until an event); otherwise as pgsplit_epoll_poll.
int pgsplit_epoll_wait(int epfd, uint64_t *tokens, uint32_t *readiness, int capacity, int timeout_ms);

/// eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK): a descriptor another thread makes readable to wake a waiter.
int pgsplit_eventfd_create(void);

/// Adds 1 to an eventfd's counter (makes it readable). Returns 0 or -1 (errno set).
int pgsplit_eventfd_signal(int fd);

/// Resets an eventfd's counter to 0 (not readable) without blocking. Returns 0 or -1 (errno set).
int pgsplit_eventfd_drain(int fd);

/// Starts a detached thread named `name` (at most 15 bytes are kept) that runs `body(context)`.
/// Returns 0 or an error number.
int pgsplit_thread_start(const char *name, void (*body)(void *), void *context);

/// Fixes glibc's mmap threshold at `bytes`, which also stops glibc from raising it to the size of
/// each large block freed. Returns mallopt's result (1 on success).
int pgsplit_fix_mmap_threshold(int bytes);

#endif
