/*
 * cidr.h - IPv4/IPv6 networks: parse "192.0.2.0/24", "2001:db8::/32" or
 * a bare address, match client addresses against lists of them (an
 * IPv4-mapped IPv6 address matches as IPv4), and the key under which a
 * client is counted by the limits (IPv6 aggregated to a prefix). Pure.
 */
#ifndef PROXY_CIDR_H
#define PROXY_CIDR_H

#include <stddef.h>
#include <stdint.h>
#include "net.h"

struct cidr {
	int family;		/* AF_INET or AF_INET6 */
	uint8_t addr[16];	/* network address, host bits zeroed */
	unsigned prefix;	/* 0..32 or 0..128 */
};

struct cidr_list {
	struct cidr *v;
	unsigned n;
};

/* Returns 0, or -1 for a bad network (host bits set is accepted and cleared). */
int cidr_parse(const char *s, struct cidr *out);
int cidr_match(const struct cidr *c, const struct net_addr *a);
int cidr_list_match(const struct cidr_list *l, const struct net_addr *a);
/*
 * Parses a list of strings into l (malloc'd; cidr_list_free releases it).
 * Returns 0, or -1 with the index of the bad entry in *bad.
 */
int cidr_list_parse(struct cidr_list *l, char *const *items, unsigned n, unsigned *bad);
void cidr_list_free(struct cidr_list *l);

/*
 * The limits key of a client: "192.0.2.1" for IPv4 (and IPv4-mapped
 * IPv6), "2001:db8:1:2::/64" for IPv6 with ipv6_prefix 64 (the address
 * masked to the prefix, in canonical inet_ntop form, then "/prefix").
 * Returns the length written (out always NUL-terminated), 0 for a
 * non-IP address.
 */
size_t cidr_client_key(const struct net_addr *a, unsigned ipv6_prefix, char *out, size_t outlen);

#endif
