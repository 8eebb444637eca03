/*
 * assets.c - builds what a config snapshot's files hold (see assets.h):
 * certificates and keys into TLS contexts, CA files into backend client
 * contexts, the users file into a table. Errors name the config line of
 * the key that points at the file.
 */
#include <stdio.h>
#include <stdlib.h>
#include "assets.h"
#include "auth_users.h"
#include "mem.h"
#include "tls.h"

static void
assets_free(void *p)
{
	struct assets *a = p;

	if (a == NULL)
		return;
	tls_ctx_free(a->server);
	for (unsigned i = 0; i < a->nbackends; i++)
		tls_ctx_free(a->backend_tls[i]);
	free(a->backend_tls);
	if (a->users)
		auth_users_unref(a->users);
	free(a);
}

static struct tls_ctx *
server_ctx(const struct config *c, const struct cfg_tls_site *site, char *err, size_t errlen)
{
	struct tls_server_opts o = {
		.certificate = site->certificate,
		.key = site->key,
		.protocols = (c->tls.protocols & CFG_TLS_V12 ? TLS_V12 : 0) |
			     (c->tls.protocols & CFG_TLS_V13 ? TLS_V13 : 0),
		.session_tickets = c->tls.session_tickets,
	};
	char why[512];
	struct tls_ctx *t = tls_server_ctx_new(&o, why, sizeof(why));

	if (t == NULL)
		snprintf(err, errlen, "%s:%d: %s", c->path,
			 site->keyline[0] ? site->keyline[0] : site->line, why);
	return t;
}

int
assets_build(struct config *c, char *err, size_t errlen)
{
	struct assets *a = xcalloc(1, sizeof(*a));
	char why[512];

	if (c->tls.enabled) {
		a->server = server_ctx(c, &c->tls.def, err, errlen);
		if (a->server == NULL)
			goto fail;
		for (unsigned i = 0; i < c->tls.nsites; i++) {
			struct tls_ctx *site = server_ctx(c, &c->tls.sites[i], err, errlen);
			if (site == NULL)
				goto fail;
			if (tls_server_ctx_add_sni(a->server, c->tls.sites[i].name, site) < 0) {
				tls_ctx_free(site);
				snprintf(err, errlen, "%s: out of memory", c->path);
				goto fail;
			}
		}
	}
	a->nbackends = c->nbackends;
	a->backend_tls = xcalloc(c->nbackends ? c->nbackends : 1, sizeof(*a->backend_tls));
	for (unsigned i = 0; i < c->nbackends; i++) {
		const struct cfg_backend *b = &c->backends[i];
		if (!b->tls)
			continue;
		a->backend_tls[i] = tls_client_ctx_new(b->tls_verify, b->tls_ca, why, sizeof(why));
		if (a->backend_tls[i] == NULL) {
			snprintf(err, errlen, "%s:%d: backend %s: %s", c->path, b->line, b->name, why);
			goto fail;
		}
	}
	if (c->auth.enabled) {
		a->users = auth_users_load(c->auth.users, why, sizeof(why));
		if (a->users == NULL) {
			snprintf(err, errlen, "%s:%d: users: %s", c->path,
				 c->auth.users_line ? c->auth.users_line : 0, why);
			goto fail;
		}
	}
	c->assets = a;
	c->assets_free = assets_free;
	return 0;
fail:
	assets_free(a);
	return -1;
}
