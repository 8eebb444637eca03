/*
 * cidr.c - owns IPv4/IPv6 network parsing ("192.0.2.0/24", "2001:db8::/32",
 * bare addresses), matching client addresses against networks and lists
 * of them, and the per-client limits key. Pure: no I/O, and no
 * allocation except the array of cidr_list_parse.
 *
 * Choices, on purpose:
 *  - The prefix is decimal without sign, spaces or leading zeros ("/08"
 *    is refused): a configuration typo should fail loudly, not be read
 *    as some other network.
 *  - Host bits set ("10.1.2.3/8") are accepted and cleared, as the
 *    header promises; the stored network is always canonical.
 *  - An IPv4-mapped IPv6 client (::ffff:a.b.c.d, what a dual-stack
 *    listener reports for IPv4 peers) matches IPv4 networks through its
 *    embedded address, and still matches IPv6 networks as the 16-octet
 *    address it is. A plain AF_INET client matches IPv4 networks only.
 *  - AF_UNIX (and any other family) matches nothing and has no key.
 */
#include <arpa/inet.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "cidr.h"

static const uint8_t v4mapped_prefix[12] = {
	0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff
};

/* Zeroes every bit of addr[0..bytes) past the first prefix bits. */
static void
mask_bits(uint8_t *addr, unsigned bytes, unsigned prefix)
{
	unsigned i;

	for (i = 0; i < bytes; i++) {
		unsigned lo = i * 8;

		if (prefix >= lo + 8)
			continue;
		if (prefix <= lo)
			addr[i] = 0;
		else
			addr[i] &= (uint8_t)(0xff00u >> (prefix - lo));
	}
}

/* Whether the first prefix bits of a and b agree. */
static int
prefix_equal(const uint8_t *a, const uint8_t *b, unsigned prefix)
{
	unsigned full = prefix / 8, rest = prefix % 8;

	if (full > 0 && memcmp(a, b, full) != 0)
		return 0;
	if (rest == 0)
		return 1;
	return ((a[full] ^ b[full]) & (uint8_t)(0xff00u >> rest)) == 0;
}

/* "0".."128" strictly: digits only, no leading zero, at most max. */
static int
parse_prefix(const char *s, unsigned max, unsigned *out)
{
	unsigned v = 0;
	size_t i;

	if (s[0] == '\0' || (s[0] == '0' && s[1] != '\0'))
		return -1;
	for (i = 0; s[i] != '\0'; i++) {
		if (s[i] < '0' || s[i] > '9' || i >= 3)
			return -1;
		v = v * 10 + (unsigned)(s[i] - '0');
	}
	if (v > max)
		return -1;
	*out = v;
	return 0;
}

int
cidr_parse(const char *s, struct cidr *out)
{
	char addr[INET6_ADDRSTRLEN + 1];
	const char *slash;
	size_t alen;
	struct cidr c;
	unsigned max;

	if (s == NULL)
		return -1;
	slash = strchr(s, '/');
	alen = slash != NULL ? (size_t)(slash - s) : strlen(s);
	if (alen == 0 || alen >= sizeof(addr))
		return -1;
	memcpy(addr, s, alen);
	addr[alen] = '\0';

	memset(&c, 0, sizeof(c));
	/* a colon decides the family, so "1.2.3.4" is never read as v6 */
	if (strchr(addr, ':') != NULL) {
		if (inet_pton(AF_INET6, addr, c.addr) != 1)
			return -1;
		c.family = AF_INET6;
		max = 128;
	} else {
		if (inet_pton(AF_INET, addr, c.addr) != 1)
			return -1;
		c.family = AF_INET;
		max = 32;
	}
	if (slash == NULL)
		c.prefix = max;
	else if (parse_prefix(slash + 1, max, &c.prefix) != 0)
		return -1;
	mask_bits(c.addr, max / 8, c.prefix);
	*out = c;
	return 0;
}

int
cidr_match(const struct cidr *c, const struct net_addr *a)
{
	const uint8_t *ip;

	if (c == NULL || a == NULL)
		return 0;
	switch (a->u.sa.sa_family) {
	case AF_INET:
		if (c->family != AF_INET)
			return 0;
		ip = (const uint8_t *)&a->u.sin.sin_addr;
		return prefix_equal(ip, c->addr, c->prefix);
	case AF_INET6:
		ip = a->u.sin6.sin6_addr.s6_addr;
		if (c->family == AF_INET6)
			return prefix_equal(ip, c->addr, c->prefix);
		/* dual-stack sockets report IPv4 peers as ::ffff:a.b.c.d */
		if (c->family == AF_INET && memcmp(ip, v4mapped_prefix, 12) == 0)
			return prefix_equal(ip + 12, c->addr, c->prefix);
		return 0;
	default:
		return 0;
	}
}

int
cidr_list_match(const struct cidr_list *l, const struct net_addr *a)
{
	unsigned i;

	if (l == NULL)
		return 0;
	for (i = 0; i < l->n; i++)
		if (cidr_match(&l->v[i], a))
			return 1;
	return 0;
}

int
cidr_list_parse(struct cidr_list *l, char *const *items, unsigned n, unsigned *bad)
{
	struct cidr *v = NULL;
	unsigned i;

	l->v = NULL;
	l->n = 0;
	if (n == 0)
		return 0;
	v = calloc(n, sizeof(*v));
	if (v == NULL) {
		/* no entry is to blame: point past the end */
		if (bad != NULL)
			*bad = n;
		return -1;
	}
	for (i = 0; i < n; i++) {
		if (cidr_parse(items[i], &v[i]) != 0) {
			free(v);
			if (bad != NULL)
				*bad = i;
			return -1;
		}
	}
	l->v = v;
	l->n = n;
	return 0;
}

void
cidr_list_free(struct cidr_list *l)
{
	if (l == NULL)
		return;
	free(l->v);
	l->v = NULL;
	l->n = 0;
}

/* snprintf's result clamped to what actually fits in out. */
static size_t
written(int r, size_t outlen)
{
	if (r < 0)
		return 0;
	if ((size_t)r >= outlen)
		return outlen - 1;
	return (size_t)r;
}

size_t
cidr_client_key(const struct net_addr *a, unsigned ipv6_prefix, char *out, size_t outlen)
{
	char ip[INET6_ADDRSTRLEN];
	const uint8_t *p;
	uint8_t masked[16];

	if (out == NULL || outlen == 0)
		return 0;
	out[0] = '\0';
	if (a == NULL)
		return 0;
	switch (a->u.sa.sa_family) {
	case AF_INET:
		if (inet_ntop(AF_INET, &a->u.sin.sin_addr, ip, sizeof(ip)) == NULL)
			return 0;
		return written(snprintf(out, outlen, "%s", ip), outlen);
	case AF_INET6:
		p = a->u.sin6.sin6_addr.s6_addr;
		/* an IPv4 peer on a dual-stack socket counts as that IPv4 */
		if (memcmp(p, v4mapped_prefix, 12) == 0) {
			if (inet_ntop(AF_INET, p + 12, ip, sizeof(ip)) == NULL)
				return 0;
			return written(snprintf(out, outlen, "%s", ip), outlen);
		}
		/*
		 * One subscriber usually owns a whole /64 (or /48), so per-
		 * address keys would let it dodge the limits by rotating.
		 */
		if (ipv6_prefix > 128)
			ipv6_prefix = 128;
		memcpy(masked, p, 16);
		mask_bits(masked, 16, ipv6_prefix);
		if (inet_ntop(AF_INET6, masked, ip, sizeof(ip)) == NULL)
			return 0;
		return written(snprintf(out, outlen, "%s/%u", ip, ipv6_prefix), outlen);
	default:
		return 0;
	}
}
