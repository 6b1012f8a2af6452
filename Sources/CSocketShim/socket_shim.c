#define _GNU_SOURCE
#include <errno.h>
#include <malloc.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <unistd.h>
#include "socket_shim.h"

int pgsplit_accept4_peer(int fd, void *address, uint32_t *length) {
    socklen_t size = *length;
    int client = accept4(fd, (struct sockaddr *)address, &size, SOCK_NONBLOCK | SOCK_CLOEXEC);
    *length = size;
    return client;
}

long pgsplit_recv(int fd, void *buffer, unsigned long length) {
    return syscall(SYS_recvfrom, fd, buffer, length, 0, NULL, NULL);
}

long pgsplit_send(int fd, const void *bytes, unsigned long length) {
    return syscall(SYS_sendto, fd, bytes, length, MSG_NOSIGNAL, NULL, 0);
}

int pgsplit_epoll_create(void) {
    return epoll_create1(EPOLL_CLOEXEC);
}

int pgsplit_epoll_update(int epfd, int op, int fd, uint32_t interest, uint64_t token) {
    struct epoll_event event = {0};
    if (interest & PGSPLIT_EPOLL_IN) event.events |= EPOLLIN | EPOLLRDHUP;
    if (interest & PGSPLIT_EPOLL_OUT) event.events |= EPOLLOUT;
    event.data.u64 = token;
    int ctl = op == 0 ? EPOLL_CTL_ADD : (op == 1 ? EPOLL_CTL_MOD : EPOLL_CTL_DEL);
    return epoll_ctl(epfd, ctl, fd, &event);
}

#define PGSPLIT_EPOLL_BATCH 256

int pgsplit_epoll_poll(int epfd, uint64_t *tokens, uint32_t *readiness, int capacity) {
    return pgsplit_epoll_wait(epfd, tokens, readiness, capacity, 0);
}

int pgsplit_epoll_wait(int epfd, uint64_t *tokens, uint32_t *readiness, int capacity, int timeout_ms) {
    struct epoll_event events[PGSPLIT_EPOLL_BATCH];
    if (capacity > PGSPLIT_EPOLL_BATCH) capacity = PGSPLIT_EPOLL_BATCH;
    int count;
    do {
        // As a plain system call, for the reason given at pgsplit_recv (epoll_pwait: aarch64 has no epoll_wait).
        count = (int)syscall(SYS_epoll_pwait, epfd, events, capacity, timeout_ms, NULL, 8);
    } while (count < 0 && errno == EINTR);
    for (int i = 0; i < count; i++) {
        uint32_t bits = 0;
        if (events[i].events & (EPOLLIN | EPOLLRDHUP)) bits |= PGSPLIT_EPOLL_IN;
        if (events[i].events & EPOLLOUT) bits |= PGSPLIT_EPOLL_OUT;
        if (events[i].events & EPOLLERR) bits |= PGSPLIT_EPOLL_ERR;
        if (events[i].events & EPOLLHUP) bits |= PGSPLIT_EPOLL_HUP;
        tokens[i] = events[i].data.u64;
        readiness[i] = bits;
    }
    return count;
}

int pgsplit_eventfd_create(void) {
    return eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
}

int pgsplit_eventfd_signal(int fd) {
    uint64_t one = 1;
    ssize_t written;
    do {
        written = write(fd, &one, sizeof one);
    } while (written < 0 && errno == EINTR);
    // EAGAIN means the counter is already (nearly) full: the descriptor is readable either way.
    return written == sizeof one || (written < 0 && errno == EAGAIN) ? 0 : -1;
}

int pgsplit_eventfd_drain(int fd) {
    uint64_t count;
    ssize_t got;
    do {
        got = read(fd, &count, sizeof count);
    } while (got < 0 && errno == EINTR);
    // EAGAIN: nothing was signalled since the last drain.
    return got == sizeof count || (got < 0 && errno == EAGAIN) ? 0 : -1;
}

struct pgsplit_thread_start_args {
    void (*body)(void *);
    void *context;
};

static void *pgsplit_thread_main(void *raw) {
    struct pgsplit_thread_start_args args = *(struct pgsplit_thread_start_args *)raw;
    free(raw);
    args.body(args.context);
    return NULL;
}

int pgsplit_thread_start(const char *name, void (*body)(void *), void *context) {
    struct pgsplit_thread_start_args *args = malloc(sizeof *args);
    if (!args) return ENOMEM;
    args->body = body;
    args->context = context;
    pthread_attr_t attr;
    pthread_attr_init(&attr);
    pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED);
    pthread_t thread;
    int result = pthread_create(&thread, &attr, pgsplit_thread_main, args);
    pthread_attr_destroy(&attr);
    if (result != 0) {
        free(args);
        return result;
    }
    char short_name[16];
    snprintf(short_name, sizeof short_name, "%s", name);
    pthread_setname_np(thread, short_name);
    return 0;
}

int pgsplit_fix_mmap_threshold(int bytes) {
    return mallopt(M_MMAP_THRESHOLD, bytes);
}
