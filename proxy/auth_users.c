/*
 * auth_users.c - owns the [auth] users table (load, checks, lookup,
 * reference count) and password verification with libxcrypt (see
 * auth_users.h).
 *
 * Memory: a table is one struct, the file's bytes (names and hashes are
 * NUL-terminated in place and the slots point into them) and the slot
 * array; all three are released by the last unref, the file bytes wiped
 * first since they hold password hashes.
 */
#include <crypt.h>
#include <errno.h>
#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <sys/random.h>
#include <sys/stat.h>
#include "auth_users.h"
#include "core.h"
#include "sasl.h"

/* A users file is small; this only stops a wrong path (a log, a device) from eating memory. */
#define AU_FILE_MAX	(64u << 20)

enum au_scheme { AU_YESCRYPT = 0, AU_SHA512, AU_BCRYPT, AU_NSCHEMES };

/*
 * Supported schemes and the length of the final '$' field (the hash; for
 * bcrypt salt and hash together). crypt_checksalt looks at the prefix
 * only, so this length is what tells a whole hash from a truncated one.
 */
static const struct {
	const char *prefix;
	enum au_scheme scheme;
	size_t final_len;
} au_schemes[] = {
	{ "$y$", AU_YESCRYPT, 43 },
	{ "$6$", AU_SHA512, 86 },
	{ "$2b$", AU_BCRYPT, 53 },
	{ "$2y$", AU_BCRYPT, 53 },
};

struct au_slot {
	const char *name;	/* NULL: empty slot */
	const char *hash;
	unsigned line;
};

struct auth_users {
	int refs;		/* atomic */
	size_t count;
	size_t mask;		/* slots - 1, a power of two minus one */
	struct au_slot *slots;
	char *buf;		/* the file's bytes, NUL-terminated */
	size_t len;		/* bytes read */
	size_t buflen;		/* bytes allocated (all wiped at free) */
	char dummy[CRYPT_OUTPUT_SIZE];
};

/* FNV-1a: the keys come from the administrator's file, so no flooding concern. */
static uint32_t
au_hash(const char *s)
{
	uint32_t h = 2166136261u;

	for (; *s; s++)
		h = (h ^ (unsigned char)*s) * 16777619u;
	return h;
}

static struct au_slot *
au_find(const struct auth_users *t, const char *name)
{
	size_t i = au_hash(name) & t->mask;

	/* The table is never more than half full, so an empty slot ends the probe. */
	while (t->slots[i].name && strcmp(t->slots[i].name, name) != 0)
		i = (i + 1) & t->mask;
	return &t->slots[i];
}

static void
au_free(struct auth_users *t)
{
	if (t->buf) {
		explicit_bzero(t->buf, t->buflen);
		free(t->buf);
	}
	free(t->slots);
	explicit_bzero(t->dummy, sizeof(t->dummy));
	free(t);
}

/* Reads the whole file into a NUL-terminated heap buffer; 0, or -1 with err set. */
static int
au_read(const char *path, struct auth_users *t, char *err, size_t errlen)
{
	struct stat st;
	size_t cap, len = 0;
	char *buf;
	/* O_NONBLOCK: a FIFO or device given by mistake must not hang a reload; regular files ignore it */
	int fd = open(path, O_RDONLY | O_CLOEXEC | O_NONBLOCK | O_NOCTTY);

	if (fd < 0) {
		snprintf(err, errlen, "%s:0: cannot open: %s", path, strerror(errno));
		return -1;
	}
	if (fstat(fd, &st) < 0 || !S_ISREG(st.st_mode)) {
		snprintf(err, errlen, "%s:0: not a regular file", path);
		close(fd);
		return -1;
	}
	/* one octet for the NUL, one so that the read which sees EOF needs no bigger buffer */
	cap = (size_t)st.st_size + 2;
	if (cap > AU_FILE_MAX)
		goto too_large;
	buf = malloc(cap);
	if (buf == NULL) {
		snprintf(err, errlen, "%s:0: out of memory", path);
		close(fd);
		return -1;
	}
	for (;;) {
		ssize_t n;

		if (len + 1 == cap) {
			/* The file grew while we read it: take what fits under the cap. */
			char *nb;

			if (cap >= AU_FILE_MAX) {
				explicit_bzero(buf, len);
				free(buf);
				goto too_large;
			}
			nb = realloc(buf, MIN(cap * 2, (size_t)AU_FILE_MAX));
			if (nb == NULL) {
				explicit_bzero(buf, len);
				free(buf);
				snprintf(err, errlen, "%s:0: out of memory", path);
				close(fd);
				return -1;
			}
			buf = nb;
			cap = MIN(cap * 2, (size_t)AU_FILE_MAX);
		}
		n = read(fd, buf + len, cap - 1 - len);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0) {
			snprintf(err, errlen, "%s:0: cannot read: %s", path, strerror(errno));
			explicit_bzero(buf, len);
			free(buf);
			close(fd);
			return -1;
		}
		if (n == 0)
			break;
		len += (size_t)n;
	}
	close(fd);
	buf[len] = '\0';
	t->buf = buf;
	t->len = len;
	t->buflen = cap;
	return 0;
too_large:
	snprintf(err, errlen, "%s:0: larger than %u MiB", path, AU_FILE_MAX >> 20);
	close(fd);
	return -1;
}

static int
is_crypt_char(unsigned char c)
{
	return c == '.' || c == '/' || (c >= '0' && c <= '9') ||
	       (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z');
}

/* The scheme of a hash, or -1 with *why set when it is unsupported or misshapen. */
static int
au_check_hash(const char *h, const char **why)
{
	const char *fin;
	size_t i, dollars = 0;
	int s = -1;

	for (i = 0; i < sizeof(au_schemes) / sizeof(au_schemes[0]); i++)
		if (strncmp(h, au_schemes[i].prefix, strlen(au_schemes[i].prefix)) == 0)
			s = (int)i;
	if (s < 0) {
		*why = "unsupported password hash (use yescrypt $y$, sha512-crypt $6$ or bcrypt $2b$/$2y$, as mkpasswd writes them)";
		return -1;
	}
#ifdef CRYPT_SALT_OK
	/* it checks the characters of the whole string, and that the method is enabled */
	if (crypt_checksalt(h) != CRYPT_SALT_OK) {
		*why = "malformed password hash (libcrypt's crypt_checksalt refuses it)";
		return -1;
	}
#endif
	for (i = 0; h[i]; i++)
		dollars += h[i] == '$';
	fin = strrchr(h, '$') + 1;
	for (i = 0; fin[i] && is_crypt_char((unsigned char)fin[i]); i++)
		;
	if (fin[i] != '\0' || i != au_schemes[s].final_len) {
		*why = "malformed password hash (truncated, or a character outside [./0-9A-Za-z])";
		return -1;
	}
	switch (au_schemes[s].scheme) {
	case AU_YESCRYPT:	/* $y$params$salt$hash */
		if (dollars != 4)
			goto shape;
		break;
	case AU_SHA512:		/* $6$[rounds=N$]salt$hash */
		if (dollars != 3 && !(dollars == 4 && strncmp(h, "$6$rounds=", 10) == 0))
			goto shape;
		break;
	case AU_BCRYPT:		/* $2b$NN$salt+hash */
		if (dollars != 3 || h[4] < '0' || h[4] > '3' || h[5] < '0' || h[5] > '9' || h[6] != '$')
			goto shape;
		break;
	default:
		goto shape;
	}
	return (int)au_schemes[s].scheme;
shape:
	*why = "malformed password hash (bad '$' fields)";
	return -1;
}

/* crypt_rn with a heap struct crypt_data (32 KB: too big for a small thread stack). */
static int
au_crypt(const char *phrase, const char *setting, char *out, size_t outlen)
{
	struct crypt_data *cd = calloc(1, sizeof(*cd));
	const char *r;
	int ret = -1;

	if (cd == NULL)
		return -1;
	r = crypt_rn(phrase, setting, cd, sizeof(*cd));
	if (r && r[0] != '*' && strlen(r) < outlen) {
		memcpy(out, r, strlen(r) + 1);
		ret = 0;
	}
	/* it holds state derived from the password */
	explicit_bzero(cd, sizeof(*cd));
	free(cd);
	return ret;
}

static int
au_make_dummy(struct auth_users *t, const char *setting)
{
	static const char hex[] = "0123456789abcdef";
	unsigned char rnd[24];
	char pw[2 * sizeof(rnd) + 1], gen[CRYPT_GENSALT_OUTPUT_SIZE];
	size_t i;
	int ret;

	if (getrandom(rnd, sizeof(rnd), 0) != (ssize_t)sizeof(rnd))
		return -1;
	for (i = 0; i < sizeof(rnd); i++) {
		pw[2 * i] = hex[rnd[i] >> 4];
		pw[2 * i + 1] = hex[rnd[i] & 15];
	}
	pw[2 * sizeof(rnd)] = '\0';
	ret = -1;
	if (setting)
		ret = au_crypt(pw, setting, t->dummy, sizeof(t->dummy));
	/* No account, or a setting libcrypt refuses: yescrypt at its default cost. */
	if (ret < 0 && crypt_gensalt_rn("$y$", 0, NULL, 0, gen, sizeof(gen)) != NULL)
		ret = au_crypt(pw, gen, t->dummy, sizeof(t->dummy));
	explicit_bzero(pw, sizeof(pw));
	explicit_bzero(rnd, sizeof(rnd));
	return ret;
}

static int
au_blank(char c)
{
	return c == ' ' || c == '\t' || c == '\r';
}

/* Parses t->buf into the slots; 0, or -1 with err set. */
static int
au_parse(const char *path, struct auth_users *t, char *err, size_t errlen)
{
	char *p = t->buf, *end = t->buf + t->len, *nul;
	const char *first[AU_NSCHEMES] = { NULL };
	size_t per[AU_NSCHEMES] = { 0 }, nlines = 1, cap = 16, i;
	unsigned line = 0;
	int best, s;

	/* names and hashes become C strings: a NUL inside would silently cut one */
	nul = memchr(t->buf, '\0', t->len);
	if (nul) {
		for (char *q = t->buf; q < nul; q++)
			line += *q == '\n';
		snprintf(err, errlen, "%s:%u: NUL byte in the file", path, line + 1);
		return -1;
	}
	for (char *q = p; (q = memchr(q, '\n', (size_t)(end - q))) != NULL; q++)
		nlines++;
	while (cap < 2 * nlines)
		cap *= 2;
	t->slots = calloc(cap, sizeof(*t->slots));
	if (t->slots == NULL) {
		snprintf(err, errlen, "%s:0: out of memory", path);
		return -1;
	}
	t->mask = cap - 1;
	while (p < end) {
		char *nl = memchr(p, '\n', (size_t)(end - p)), *lend = nl ? nl : end;
		char *name, *colon, *hash, *hend;
		const char *why;
		struct au_slot *slot;
		size_t nlen;

		line++;
		*lend = '\0';
		while (p < lend && au_blank(*p))
			p++;
		while (lend > p && au_blank(lend[-1]))
			*--lend = '\0';
		name = p;
		p = nl ? nl + 1 : end;
		if (*name == '\0' || *name == '#')
			continue;
		colon = strchr(name, ':');
		if (colon == NULL) {
			snprintf(err, errlen, "%s:%u: expected NAME:HASH, no ':' found", path, line);
			return -1;
		}
		*colon = '\0';
		nlen = (size_t)(colon - name);
		if (nlen == 0) {
			snprintf(err, errlen, "%s:%u: empty user name", path, line);
			return -1;
		}
		if (nlen > SASL_USER_MAX) {
			snprintf(err, errlen, "%s:%u: user name longer than %d octets", path, line, SASL_USER_MAX);
			return -1;
		}
		for (i = 0; i < nlen; i++) {
			unsigned char c = (unsigned char)name[i];

			if (c <= ' ' || c == 0x7f) {
				snprintf(err, errlen, "%s:%u: blank or control character in user name", path, line);
				return -1;
			}
		}
		hash = colon + 1;
		hend = strchr(hash, ':');
		if (hend)
			*hend = '\0';
		if (*hash == '\0') {
			snprintf(err, errlen, "%s:%u: user %s: no password hash", path, line, name);
			return -1;
		}
		s = au_check_hash(hash, &why);
		if (s < 0) {
			snprintf(err, errlen, "%s:%u: user %s: %s", path, line, name, why);
			return -1;
		}
		slot = au_find(t, name);
		if (slot->name) {
			snprintf(err, errlen, "%s:%u: duplicate user %s (first on line %u)",
				 path, line, name, slot->line);
			return -1;
		}
		slot->name = name;
		slot->hash = hash;
		slot->line = line;
		t->count++;
		per[s]++;
		if (first[s] == NULL)
			first[s] = hash;
	}
	best = AU_YESCRYPT;
	for (s = 0; s < AU_NSCHEMES; s++)
		if (per[s] > per[best])
			best = s;
	if (au_make_dummy(t, first[best]) < 0) {
		snprintf(err, errlen, "%s:0: cannot compute the dummy hash (getrandom or libcrypt failed)", path);
		return -1;
	}
	return 0;
}

struct auth_users *
auth_users_load(const char *path, char *err, size_t errlen)
{
	struct auth_users *t = calloc(1, sizeof(*t));

	if (errlen > 0)
		err[0] = '\0';
	if (t == NULL) {
		snprintf(err, errlen, "%s:0: out of memory", path);
		return NULL;
	}
	t->refs = 1;
	if (au_read(path, t, err, errlen) < 0 || au_parse(path, t, err, errlen) < 0) {
		au_free(t);
		return NULL;
	}
	return t;
}

struct auth_users *
auth_users_ref(struct auth_users *t)
{
	__atomic_add_fetch(&t->refs, 1, __ATOMIC_RELAXED);
	return t;
}

void
auth_users_unref(struct auth_users *t)
{
	if (t == NULL)
		return;
	/* Acquire-release so the last owner sees every other owner's reads done. */
	if (__atomic_sub_fetch(&t->refs, 1, __ATOMIC_ACQ_REL) == 0)
		au_free(t);
}

size_t
auth_users_count(const struct auth_users *t)
{
	return t->count;
}

const char *
auth_users_lookup(const struct auth_users *t, const char *name)
{
	return au_find(t, name)->hash;
}

const char *
auth_users_dummy_hash(const struct auth_users *t)
{
	return t->dummy;
}

/* Equal strings, in time that depends on the lengths only (they are public: the hash's). */
static int
ct_streq(const char *a, const char *b)
{
	size_t la = strlen(a), lb = strlen(b), i;
	unsigned char d = 0;

	if (la != lb)
		return 0;
	for (i = 0; i < la; i++)
		d |= (unsigned char)(a[i] ^ b[i]);
	return d == 0;
}

int
auth_verify_password(const char *hash, const char *password)
{
	char out[CRYPT_OUTPUT_SIZE];
	int ok;

	if (hash == NULL || password == NULL)
		return 0;
	if (au_crypt(password, hash, out, sizeof(out)) < 0)
		return 0;
	ok = ct_streq(out, hash);
	explicit_bzero(out, sizeof(out));
	return ok;
}

int
auth_users_check(const struct auth_users *t, const char *name, const char *password)
{
	const char *hash = auth_users_lookup(t, name);
	int ok = auth_verify_password(hash ? hash : t->dummy, password);

	return ok && hash != NULL;
}
