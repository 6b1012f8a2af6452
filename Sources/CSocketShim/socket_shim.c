#define _GNU_SOURCE
#include <sys/socket.h>
#include "socket_shim.h"

int pgsplit_accept4_nonblock(int fd) {
    return accept4(fd, 0, 0, SOCK_NONBLOCK | SOCK_CLOEXEC);
}
