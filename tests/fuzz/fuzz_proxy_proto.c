/*
 * fuzz_proxy_proto.c - libFuzzer target for proxy/proxy_proto.c. The input
 * is copied to an exact-size heap block (and each prefix to the tail of
 * one) so ASan sees any over-read. For every allow mask it checks what
 * must hold for any input: used within the input and the header's
 * bounds, sane addresses on PP_OK, the mask respected, both-allowed
 * agreeing with the single version, no prefix of an accepted or pending
 * header rejected, extra octets never changing an accepted header, a
 * TCP4 line reproduced exactly from its result, and the same answer twice.
 */
#include <arpa/inet.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "proxy_proto.h"

#define CHECK(c) do { if (!(c)) __builtin_trap(); } while (0)

static void
check_addr(const struct net_addr *a)
{
	if (a->u.sa.sa_family == AF_INET)
		CHECK(a->len == sizeof(struct sockaddr_in));
	else
		CHECK(a->u.sa.sa_family == AF_INET6 &&
		    a->len == sizeof(struct sockaddr_in6));
}

static void
check_ok(const struct pp_result *r, const uint8_t *data, size_t size, int allow)
{
	CHECK(r->used > 0 && r->used <= size);
	CHECK(r->version == 1 || r->version == 2);
	CHECK(allow & (r->version == 1 ? PP_ALLOW_V1 : PP_ALLOW_V2));
	CHECK(r->local == 0 || r->local == 1);
	if (r->version == 1) {
		CHECK(r->used <= PP_V1_MAX && r->used >= 15);
		CHECK(memcmp(data, "PROXY ", 6) == 0);
		CHECK(data[r->used - 2] == '\r' && data[r->used - 1] == '\n');
	} else {
		CHECK(r->used >= 16 && r->used <= PP_V2_MAX);
		CHECK(r->used == 16 + ((size_t)data[14] << 8 | data[15]));
	}
	if (!r->local) {
		check_addr(&r->src);
		check_addr(&r->dst);
		CHECK(r->src.u.sa.sa_family == r->dst.u.sa.sa_family);
	}
}

static int
same_result(const struct pp_result *a, const struct pp_result *b)
{
	if (a->version != b->version || a->local != b->local || a->used != b->used)
		return 0;
	if (a->local)
		return 1;
	return a->src.len == b->src.len && a->dst.len == b->dst.len &&
	    memcmp(&a->src.u, &b->src.u, a->src.len) == 0 &&
	    memcmp(&a->dst.u, &b->dst.u, a->dst.len) == 0;
}

/* TCP4 text is canonical (inet_pton refuses leading zeros): rebuild it. */
static void
check_tcp4_roundtrip(const struct pp_result *r, const uint8_t *data)
{
	char s[INET_ADDRSTRLEN], d[INET_ADDRSTRLEN], line[PP_V1_MAX + 16];
	int n;

	if (r->version != 1 || r->local || r->src.u.sa.sa_family != AF_INET)
		return;
	CHECK(inet_ntop(AF_INET, &r->src.u.sin.sin_addr, s, sizeof(s)) != NULL);
	CHECK(inet_ntop(AF_INET, &r->dst.u.sin.sin_addr, d, sizeof(d)) != NULL);
	n = snprintf(line, sizeof(line), "PROXY TCP4 %s %s %u %u\r\n", s, d,
	    ntohs(r->src.u.sin.sin_port), ntohs(r->dst.u.sin.sin_port));
	CHECK(n > 0 && (size_t)n == r->used);
	CHECK(memcmp(line, data, r->used) == 0);
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct pp_result r, again, one;
	enum pp_status st, st2, st1;
	size_t k, lim;
	char *buf, *pre;
	int allow;

	/* the longest header plus a little of what follows it */
	if (size > PP_V2_MAX + 64)
		return 0;
	buf = malloc(size ? size : 1);
	pre = malloc(size ? size : 1);
	if (buf == NULL || pre == NULL) {
		free(buf);
		free(pre);
		return 0;
	}
	memcpy(buf, data, size);

	for (allow = 0; allow <= (PP_ALLOW_V1 | PP_ALLOW_V2); allow++) {
		st = pp_parse(buf, size, allow, &r);
		CHECK(st == PP_OK || st == PP_AGAIN || st == PP_INVALID);
		if (allow == 0)
			CHECK(st == PP_INVALID);
		if (st == PP_OK) {
			check_ok(&r, data, size, allow);
			check_tcp4_roundtrip(&r, data);
		}

		st2 = pp_parse(buf, size, allow, &again);
		CHECK(st2 == st);
		if (st == PP_OK)
			CHECK(same_result(&r, &again));

		/* with both allowed, the answer is that of the matching one */
		if (allow == (PP_ALLOW_V1 | PP_ALLOW_V2) && size > 0) {
			st1 = pp_parse(buf, size, buf[0] == 'P' ? PP_ALLOW_V1 : PP_ALLOW_V2, &one);
			CHECK(st1 == st);
			if (st == PP_OK)
				CHECK(same_result(&r, &one));
		}

		if (st == PP_INVALID)
			continue;
		/*
		 * Every proper prefix of an accepted or pending header is
		 * pending: a header is never refused for arriving slowly.
		 * Bounded so that long v2 blocks stay cheap to fuzz.
		 */
		lim = st == PP_OK ? r.used : size;
		for (k = 0; k < lim; k++) {
			if (k > 128 && k + 4 < lim && k % 97 != 0)
				continue;
			memcpy(pre + size - k, data, k);
			st1 = pp_parse(pre + size - k, k, allow, &one);
			CHECK(st1 == PP_AGAIN);
		}
		/* octets after an accepted header never change it */
		if (st == PP_OK && r.used < size) {
			memcpy(pre + size - r.used, data, r.used);
			st1 = pp_parse(pre + size - r.used, r.used, allow, &one);
			CHECK(st1 == PP_OK && same_result(&r, &one));
		}
	}
	free(buf);
	free(pre);
	return 0;
}
