/*
 * net.h - socket addresses and sockets: parse "host:port", "[v6]:port"
 * and "unix:/path"; format for logs; create listening sockets with
 * SO_REUSEPORT (one per worker) and non-blocking client sockets.
 */
#ifndef CORE_NET_H
#define CORE_NET_H

#include <sys/socket.h>
#include <netinet/in.h>
#include <sys/un.h>
#include <stddef.h>

struct net_addr {
	union {
		struct sockaddr sa;
		struct sockaddr_in sin;
		struct sockaddr_in6 sin6;
		struct sockaddr_un sun;
		struct sockaddr_storage ss;
	} u;
	socklen_t len;
};

/*
 * Parses "1.2.3.4:25", "[::1]:25", "unix:/path" (numeric only, no DNS).
 * Returns 0, or -1 with a message in err.
 */
int net_addr_parse(const char *s, struct net_addr *out, char *err, size_t errlen);
/* "1.2.3.4:25" / "[::1]:25" / "unix:/path" into buf; returns buf. */
char *net_addr_format(const struct net_addr *a, char *buf, size_t len);
/* The IP alone, no port ("1.2.3.4", "::1"); returns buf. */
char *net_addr_ip(const struct net_addr *a, char *buf, size_t len);
int net_addr_equal(const struct net_addr *a, const struct net_addr *b);
/* Size of a buffer big enough for net_addr_format. */
#define NET_ADDR_STRLEN 128

/*
 * Listening socket: SO_REUSEADDR, SO_REUSEPORT (when reuseport),
 * non-blocking, given backlog. Returns fd or -1 with err filled.
 */
int net_listen(const struct net_addr *a, int backlog, int reuseport, char *err, size_t errlen);
/* A socket of the address' family for connect(2) (TCP_NODELAY set). */
int net_socket_for(const struct net_addr *a);
/*
 * TCP_CONGESTION on a socket not yet connected (a congestion control
 * takes over at connect; set later, BBR's pacing would stay on). Returns
 * 0 or -errno; nothing to do (0) for name NULL or "". TCP sockets only.
 */
int net_set_congestion(int fd, const char *name);
/* Whether a new TCP socket takes this congestion control: 0 or -errno. */
int net_congestion_usable(const char *name);
/* TCP_NODELAY on an accepted socket (no-op for unix sockets). */
void net_set_nodelay(int fd);
/* Local port a listening socket was bound to (for port 0). */
int net_local_port(int fd);

#endif
