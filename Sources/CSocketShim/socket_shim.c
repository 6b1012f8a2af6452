#define _GNU_SOURCE
#include <errno.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include "socket_shim.h"

int pgsplit_accept4_nonblock(int fd) {
    return accept4(fd, 0, 0, SOCK_NONBLOCK | SOCK_CLOEXEC);
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
    struct epoll_event events[PGSPLIT_EPOLL_BATCH];
    if (capacity > PGSPLIT_EPOLL_BATCH) capacity = PGSPLIT_EPOLL_BATCH;
    int count;
    do {
        count = epoll_wait(epfd, events, capacity, 0);
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
