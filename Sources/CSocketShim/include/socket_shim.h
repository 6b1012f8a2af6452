#ifndef PGSPLIT_SOCKET_SHIM_H
#define PGSPLIT_SOCKET_SHIM_H
// Deliberately no _GNU_SOURCE and no sys/socket.h here: Swift would lose SOCK_NONBLOCK / MSG_NOSIGNAL.
int pgsplit_accept4_nonblock(int fd);
#endif
