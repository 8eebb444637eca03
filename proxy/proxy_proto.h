/*
 * proxy_proto.h - the HAProxy PROXY protocol header (v1 text, v2
 * binary) that a load balancer sends before the client's first byte.
 * Pure: bytes in, addresses out, so it is unit-tested and fuzzed.
 */
#ifndef PROXY_PROXY_PROTO_H
#define PROXY_PROXY_PROTO_H

#include <stddef.h>
#include "net.h"

/* Longest header: v1 is at most 107 octets; v2 is 16 + a 16-bit length. */
#define PP_V1_MAX 107
#define PP_V2_MAX (16 + 65535)

enum pp_status {
	PP_OK = 0,	/* a complete, valid header of *used octets */
	PP_AGAIN,	/* valid so far, more octets needed */
	PP_INVALID,	/* not a valid PROXY header (of the versions allowed) */
};

enum { PP_ALLOW_V1 = 1, PP_ALLOW_V2 = 2 };

struct pp_result {
	int version;		/* 1 or 2 */
	int local;		/* v1 "UNKNOWN" or v2 LOCAL/UNSPEC: keep the socket's own addresses */
	struct net_addr src;	/* the real client (when !local) */
	struct net_addr dst;	/* the address it connected to (when !local) */
	size_t used;		/* header length: the client's bytes start after it */
};

/*
 * Parses the start of buf. allow is PP_ALLOW_V1 | PP_ALLOW_V2. v1: "PROXY
 * TCP4|TCP6|UNKNOWN src dst sport dport\r\n", strict (single spaces,
 * canonical numbers, addresses of the stated family). v2: the 12-octet
 * signature, version 2, command LOCAL or PROXY, families INET/INET6 over
 * STREAM (UNSPEC and others: local), TLVs skipped but bounded by the
 * length. Returns PP_AGAIN until enough octets are there to decide.
 */
enum pp_status pp_parse(const char *buf, size_t len, int allow, struct pp_result *out);

#endif
