/*
 * net.c - socket addresses (numeric parse and format) and socket set-up.
 * No name resolution: configuration names addresses, never hosts, so
 * start-up cannot hang on DNS.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/tcp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include "net.h"

static int
parse_port(const char *s, in_port_t *port)
{
	char *end;
	long v;

	if (*s < '0' || *s > '9')
		return -1;
	errno = 0;
	v = strtol(s, &end, 10);
	if (errno || *end || v < 0 || v > 65535)
		return -1;
	*port = htons((uint16_t)v);
	return 0;
}

int
net_addr_parse(const char *s, struct net_addr *out, char *err, size_t errlen)
{
	char host[INET6_ADDRSTRLEN + 1];
	const char *colon;
	size_t hlen;
	in_port_t port;

	memset(out, 0, sizeof(*out));
	if (strncmp(s, "unix:", 5) == 0) {
		const char *path = s + 5;
		if (*path == '\0' || strlen(path) >= sizeof(out->u.sun.sun_path)) {
			snprintf(err, errlen, "bad unix socket path '%s'", s);
			return -1;
		}
		out->u.sun.sun_family = AF_UNIX;
		strcpy(out->u.sun.sun_path, path);
		out->len = (socklen_t)(offsetof(struct sockaddr_un, sun_path) + strlen(path) + 1);
		return 0;
	}
	if (*s == '[') {
		const char *close = strchr(s, ']');
		if (close == NULL || close[1] != ':') {
			snprintf(err, errlen, "bad address '%s' (expected [IPv6]:port)", s);
			return -1;
		}
		hlen = (size_t)(close - s - 1);
		colon = close + 1;
		s++;
	} else {
		colon = strrchr(s, ':');
		if (colon == NULL) {
			snprintf(err, errlen, "bad address '%s' (expected host:port)", s);
			return -1;
		}
		hlen = (size_t)(colon - s);
	}
	if (hlen == 0 || hlen >= sizeof(host)) {
		snprintf(err, errlen, "bad address '%s'", s);
		return -1;
	}
	memcpy(host, s, hlen);
	host[hlen] = '\0';
	if (parse_port(colon + 1, &port) < 0) {
		snprintf(err, errlen, "bad port in '%s'", s);
		return -1;
	}
	if (inet_pton(AF_INET, host, &out->u.sin.sin_addr) == 1) {
		out->u.sin.sin_family = AF_INET;
		out->u.sin.sin_port = port;
		out->len = sizeof(struct sockaddr_in);
		return 0;
	}
	if (inet_pton(AF_INET6, host, &out->u.sin6.sin6_addr) == 1) {
		out->u.sin6.sin6_family = AF_INET6;
		out->u.sin6.sin6_port = port;
		out->len = sizeof(struct sockaddr_in6);
		return 0;
	}
	snprintf(err, errlen, "bad IP address '%s' (numeric IPv4, [IPv6] or unix:/path)", host);
	return -1;
}

char *
net_addr_ip(const struct net_addr *a, char *buf, size_t len)
{
	switch (a->u.sa.sa_family) {
	case AF_INET:
		inet_ntop(AF_INET, &a->u.sin.sin_addr, buf, (socklen_t)len);
		break;
	case AF_INET6:
		inet_ntop(AF_INET6, &a->u.sin6.sin6_addr, buf, (socklen_t)len);
		break;
	case AF_UNIX:
		snprintf(buf, len, "unix");
		break;
	default:
		snprintf(buf, len, "unknown");
	}
	return buf;
}

char *
net_addr_format(const struct net_addr *a, char *buf, size_t len)
{
	char ip[INET6_ADDRSTRLEN];

	switch (a->u.sa.sa_family) {
	case AF_INET:
		snprintf(buf, len, "%s:%u", net_addr_ip(a, ip, sizeof(ip)), ntohs(a->u.sin.sin_port));
		break;
	case AF_INET6:
		snprintf(buf, len, "[%s]:%u", net_addr_ip(a, ip, sizeof(ip)), ntohs(a->u.sin6.sin6_port));
		break;
	case AF_UNIX:
		snprintf(buf, len, "unix:%s", a->u.sun.sun_path);
		break;
	default:
		snprintf(buf, len, "unknown");
	}
	return buf;
}

int
net_addr_equal(const struct net_addr *a, const struct net_addr *b)
{
	if (a->u.sa.sa_family != b->u.sa.sa_family)
		return 0;
	switch (a->u.sa.sa_family) {
	case AF_INET:
		return a->u.sin.sin_port == b->u.sin.sin_port &&
		       a->u.sin.sin_addr.s_addr == b->u.sin.sin_addr.s_addr;
	case AF_INET6:
		return a->u.sin6.sin6_port == b->u.sin6.sin6_port &&
		       memcmp(&a->u.sin6.sin6_addr, &b->u.sin6.sin6_addr, 16) == 0;
	case AF_UNIX:
		return strcmp(a->u.sun.sun_path, b->u.sun.sun_path) == 0;
	}
	return 0;
}

int
net_listen(const struct net_addr *a, int backlog, int reuseport, char *err, size_t errlen)
{
	char name[NET_ADDR_STRLEN];
	int fd, one = 1;

	fd = socket(a->u.sa.sa_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (fd < 0)
		goto fail;
	if (a->u.sa.sa_family == AF_UNIX) {
		unlink(a->u.sun.sun_path);
	} else {
		setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
		if (reuseport && setsockopt(fd, SOL_SOCKET, SO_REUSEPORT, &one, sizeof(one)) < 0)
			goto fail;
		if (a->u.sa.sa_family == AF_INET6)
			setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &one, sizeof(one));
	}
	if (bind(fd, &a->u.sa, a->len) < 0 || listen(fd, backlog) < 0)
		goto fail;
	return fd;
fail:
	snprintf(err, errlen, "cannot listen on %s: %s",
		 net_addr_format(a, name, sizeof(name)), strerror(errno));
	if (fd >= 0)
		close(fd);
	return -1;
}

int
net_socket_for(const struct net_addr *a)
{
	int fd = socket(a->u.sa.sa_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);

	if (fd >= 0)
		net_set_nodelay(fd);
	return fd;
}

int
net_set_congestion(int fd, const char *name)
{
	if (name == NULL || *name == '\0')
		return 0;
	if (setsockopt(fd, IPPROTO_TCP, TCP_CONGESTION, name, (socklen_t)strlen(name)) < 0)
		return -errno;
	return 0;
}

int
net_congestion_usable(const char *name)
{
	int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0), ret;

	if (fd < 0)
		return -errno;
	ret = net_set_congestion(fd, name);
	close(fd);
	return ret;
}

void
net_set_nodelay(int fd)
{
	int one = 1;

	/* Replies and commands are small and latency-bound (Nagle + delayed ACK stalls ~40 ms). */
	setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
}

int
net_local_port(int fd)
{
	struct sockaddr_storage ss;
	socklen_t len = sizeof(ss);

	if (getsockname(fd, (struct sockaddr *)&ss, &len) < 0)
		return -1;
	if (ss.ss_family == AF_INET)
		return ntohs(((struct sockaddr_in *)&ss)->sin_port);
	if (ss.ss_family == AF_INET6)
		return ntohs(((struct sockaddr_in6 *)&ss)->sin6_port);
	return -1;
}
