/*
 * proxy_proto.c - owns the HAProxy PROXY protocol header parser, v1 (text)
 * and v2 (binary), per haproxy's doc/proxy-protocol.txt. Pure: bytes in,
 * addresses out, no I/O, no allocation, and never a read past buf[len).
 *
 * Strictness, on purpose (a relay that trusts this header must not be
 * talked into a wrong client address by a sloppy one):
 *  - v1: exactly "PROXY TCP4 " / "PROXY TCP6 " / "PROXY UNKNOWN", single
 *    spaces, addresses that inet_pton accepts for the stated family,
 *    ports 0..65535 in decimal without leading zeros, CRLF, and at most
 *    PP_V1_MAX (107) octets including the CRLF. After UNKNOWN anything may
 *    follow up to the CRLF, except a bare CR or LF (the line must end in
 *    CRLF, nothing else).
 *  - v1 prefixes are judged as they arrive: a wrong keyword, a character
 *    outside the field's alphabet, an over-long field or port, or a
 *    leading zero fails at once; a whole address is checked with
 *    inet_pton when its terminating space arrives.
 *  - v2: version 2 and command LOCAL or PROXY are checked as soon as the
 *    13th octet arrives. For PROXY, family/transport nibbles beyond those
 *    the spec defines (AF 0-3, transport 0-2) are refused, as the spec
 *    asks receivers to; INET/INET6 over STREAM need a length covering
 *    the address block, and their TLVs must tile the rest of it exactly
 *    (3-octet header, value inside the block). LOCAL, UNSPEC, DGRAM and
 *    UNIX are "local": the block is skipped unread, since the spec says
 *    to discard it.
 */
#include <arpa/inet.h>
#include <string.h>
#include "proxy_proto.h"

typedef unsigned char u8;

static const u8 v2_sig[12] = {
	0x0d, 0x0a, 0x0d, 0x0a, 0x00, 0x0d, 0x0a, 0x51, 0x55, 0x49, 0x54, 0x0a
};

#define V2_HDR		16
#define V2_CMD_LOCAL	0x0
#define V2_CMD_PROXY	0x1
#define V2_FAM_TCP4	0x11
#define V2_FAM_TCP6	0x21
#define V2_ADDR4_LEN	12
#define V2_ADDR6_LEN	36
#define V2_TLV_HDR	3

/* "step" results of the v1 helpers */
enum { STEP_OK = 0, STEP_MORE = 1, STEP_BAD = -1 };

/* v1 field kinds: the alphabet and longest length of each */
enum { F_IP4, F_IP6, F_PORT };

static int
field_char_ok(int kind, u8 c)
{
	switch (kind) {
	case F_IP4:
		return (c >= '0' && c <= '9') || c == '.';
	case F_IP6:
		/* the dotted tail of ::ffff:1.2.3.4 needs '.' */
		return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'f') ||
		    (c >= 'A' && c <= 'F') || c == ':' || c == '.';
	default:
		return c >= '0' && c <= '9';
	}
}

static size_t
field_max(int kind)
{
	switch (kind) {
	case F_IP4:
		return INET_ADDRSTRLEN - 1;
	case F_IP6:
		return INET6_ADDRSTRLEN - 1;
	default:
		return 5;
	}
}

/*
 * Matches b[*pos..n) against lit. STEP_MORE when the input ends inside
 * a matching prefix of it, so "PRO" waits instead of failing.
 */
static int
v1_lit(const u8 *b, size_t n, size_t *pos, const char *lit)
{
	size_t i;

	for (i = 0; lit[i] != '\0'; i++) {
		if (*pos + i >= n)
			return STEP_MORE;
		if (b[*pos + i] != (u8)lit[i])
			return STEP_BAD;
	}
	*pos += i;
	return STEP_OK;
}

/*
 * One field ending in term: copies it NUL-terminated into tok (room for
 * field_max + 1) and moves *pos past term. Ports are checked digit by
 * digit (leading zero, > 65535) so a hopeless port fails before its end.
 */
static int
v1_field(const u8 *b, size_t n, size_t *pos, int kind, u8 term, char *tok)
{
	size_t i = *pos, k = 0, max = field_max(kind);
	unsigned long port = 0;

	while (i < n && field_char_ok(kind, b[i])) {
		if (k == max)
			return STEP_BAD;
		if (kind == F_PORT) {
			if (k == 1 && tok[0] == '0')
				return STEP_BAD;
			port = port * 10 + (unsigned long)(b[i] - '0');
			if (port > 65535)
				return STEP_BAD;
		}
		tok[k++] = (char)b[i++];
	}
	if (i == n)
		return STEP_MORE;
	if (k == 0 || b[i] != term)
		return STEP_BAD;
	tok[k] = '\0';
	*pos = i + 1;
	return STEP_OK;
}

static void
set_port(struct net_addr *a, const char *tok)
{
	unsigned long v = 0;

	/* v1_field already bounded the digits to 0..65535 */
	for (; *tok != '\0'; tok++)
		v = v * 10 + (unsigned long)(*tok - '0');
	if (a->u.sa.sa_family == AF_INET)
		a->u.sin.sin_port = htons((uint16_t)v);
	else
		a->u.sin6.sin6_port = htons((uint16_t)v);
}

static int
set_ip(struct net_addr *a, int family, const char *tok)
{
	memset(a, 0, sizeof(*a));
	if (family == AF_INET) {
		if (inet_pton(AF_INET, tok, &a->u.sin.sin_addr) != 1)
			return -1;
		a->u.sin.sin_family = AF_INET;
		a->len = sizeof(struct sockaddr_in);
	} else {
		if (inet_pton(AF_INET6, tok, &a->u.sin6.sin6_addr) != 1)
			return -1;
		a->u.sin6.sin6_family = AF_INET6;
		a->len = sizeof(struct sockaddr_in6);
	}
	return 0;
}

/* "PROXY UNKNOWN" seen: anything up to the first CR, which must be CRLF. */
static int
v1_unknown(const u8 *b, size_t n, size_t *pos)
{
	size_t i;

	for (i = *pos; i < n; i++) {
		if (b[i] == '\n')
			return STEP_BAD;
		if (b[i] == '\r') {
			if (i + 1 == n)
				return STEP_MORE;
			if (b[i + 1] != '\n')
				return STEP_BAD;
			*pos = i + 2;
			return STEP_OK;
		}
	}
	return STEP_MORE;
}

/* The v1 line inside b[0..n), n already capped at PP_V1_MAX. */
static int
v1_steps(const u8 *b, size_t n, struct pp_result *out)
{
	char tok[4][INET6_ADDRSTRLEN];
	size_t pos = 0;
	int r, family, kind;

	if ((r = v1_lit(b, n, &pos, "PROXY ")) != STEP_OK)
		return r;
	/* the three protocol words differ within their first 4 octets */
	if (pos + 4 > n) {
		size_t have = n - pos;

		if (memcmp(b + pos, "TCP4", have) == 0 ||
		    memcmp(b + pos, "TCP6", have) == 0 ||
		    memcmp(b + pos, "UNKNOWN", have) == 0)
			return STEP_MORE;
		return STEP_BAD;
	}
	if (memcmp(b + pos, "UNKN", 4) == 0) {
		if ((r = v1_lit(b, n, &pos, "UNKNOWN")) != STEP_OK)
			return r;
		if ((r = v1_unknown(b, n, &pos)) != STEP_OK)
			return r;
		out->local = 1;
		out->used = pos;
		return STEP_OK;
	}
	if ((r = v1_lit(b, n, &pos, "TCP4 ")) == STEP_OK) {
		family = AF_INET;
		kind = F_IP4;
	} else if (r == STEP_BAD && (r = v1_lit(b, n, &pos, "TCP6 ")) == STEP_OK) {
		family = AF_INET6;
		kind = F_IP6;
	} else {
		return r;
	}

	if ((r = v1_field(b, n, &pos, kind, ' ', tok[0])) != STEP_OK)
		return r;
	if (set_ip(&out->src, family, tok[0]) != 0)
		return STEP_BAD;
	if ((r = v1_field(b, n, &pos, kind, ' ', tok[1])) != STEP_OK)
		return r;
	if (set_ip(&out->dst, family, tok[1]) != 0)
		return STEP_BAD;
	if ((r = v1_field(b, n, &pos, F_PORT, ' ', tok[2])) != STEP_OK)
		return r;
	if ((r = v1_field(b, n, &pos, F_PORT, '\r', tok[3])) != STEP_OK)
		return r;
	if ((r = v1_lit(b, n, &pos, "\n")) != STEP_OK)
		return r;
	set_port(&out->src, tok[2]);
	set_port(&out->dst, tok[3]);
	out->used = pos;
	return STEP_OK;
}

static enum pp_status
parse_v1(const u8 *b, size_t len, struct pp_result *out)
{
	/* a valid line fits in PP_V1_MAX; looking further proves nothing */
	size_t n = len < PP_V1_MAX ? len : PP_V1_MAX;

	out->version = 1;
	switch (v1_steps(b, n, out)) {
	case STEP_OK:
		return PP_OK;
	case STEP_MORE:
		return len >= PP_V1_MAX ? PP_INVALID : PP_AGAIN;
	default:
		return PP_INVALID;
	}
}

/* TLVs must tile b[0..n) exactly: a torn one means a torn header. */
static int
v2_tlvs_ok(const u8 *b, size_t n)
{
	size_t i = 0;

	while (i < n) {
		size_t vlen;

		if (n - i < V2_TLV_HDR)
			return 0;
		vlen = (size_t)b[i + 1] << 8 | b[i + 2];
		if (vlen > n - i - V2_TLV_HDR)
			return 0;
		i += V2_TLV_HDR + vlen;
	}
	return 1;
}

static enum pp_status
parse_v2(const u8 *b, size_t len, struct pp_result *out)
{
	size_t have = len < sizeof(v2_sig) ? len : sizeof(v2_sig);
	size_t hlen, need, total;
	u8 cmd, fam;

	out->version = 2;
	if (memcmp(b, v2_sig, have) != 0)
		return PP_INVALID;
	if (len <= sizeof(v2_sig))
		return PP_AGAIN;
	/* decide on version and command as early as they are known */
	if ((b[12] >> 4) != 2)
		return PP_INVALID;
	cmd = b[12] & 0x0f;
	if (cmd != V2_CMD_LOCAL && cmd != V2_CMD_PROXY)
		return PP_INVALID;
	if (len < V2_HDR)
		return PP_AGAIN;
	fam = b[13];
	hlen = (size_t)b[14] << 8 | b[15];
	total = V2_HDR + hlen;

	need = 0;
	if (cmd == V2_CMD_PROXY) {
		if ((fam >> 4) > 3 || (fam & 0x0f) > 2)
			return PP_INVALID;
		if (fam == V2_FAM_TCP4)
			need = V2_ADDR4_LEN;
		else if (fam == V2_FAM_TCP6)
			need = V2_ADDR6_LEN;
		if (hlen < need)
			return PP_INVALID;
	}
	if (len < total)
		return PP_AGAIN;

	out->used = total;
	if (need == 0) {
		out->local = 1;
		return PP_OK;
	}
	if (!v2_tlvs_ok(b + V2_HDR + need, hlen - need))
		return PP_INVALID;
	b += V2_HDR;
	if (fam == V2_FAM_TCP4) {
		out->src.u.sin.sin_family = AF_INET;
		out->dst.u.sin.sin_family = AF_INET;
		memcpy(&out->src.u.sin.sin_addr, b, 4);
		memcpy(&out->dst.u.sin.sin_addr, b + 4, 4);
		/* already in network order on the wire */
		memcpy(&out->src.u.sin.sin_port, b + 8, 2);
		memcpy(&out->dst.u.sin.sin_port, b + 10, 2);
		out->src.len = out->dst.len = sizeof(struct sockaddr_in);
	} else {
		out->src.u.sin6.sin6_family = AF_INET6;
		out->dst.u.sin6.sin6_family = AF_INET6;
		memcpy(&out->src.u.sin6.sin6_addr, b, 16);
		memcpy(&out->dst.u.sin6.sin6_addr, b + 16, 16);
		memcpy(&out->src.u.sin6.sin6_port, b + 32, 2);
		memcpy(&out->dst.u.sin6.sin6_port, b + 34, 2);
		out->src.len = out->dst.len = sizeof(struct sockaddr_in6);
	}
	return PP_OK;
}

enum pp_status
pp_parse(const char *buf, size_t len, int allow, struct pp_result *out)
{
	const u8 *b = (const u8 *)buf;

	memset(out, 0, sizeof(*out));
	allow &= PP_ALLOW_V1 | PP_ALLOW_V2;
	if (allow == 0)
		return PP_INVALID;
	if (len == 0)
		return PP_AGAIN;
	/* the first octet tells the versions apart: 'P' versus CR */
	if (b[0] == 'P')
		return (allow & PP_ALLOW_V1) ? parse_v1(b, len, out) : PP_INVALID;
	if (b[0] == v2_sig[0])
		return (allow & PP_ALLOW_V2) ? parse_v2(b, len, out) : PP_INVALID;
	return PP_INVALID;
}
