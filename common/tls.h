/* SPDX-License-Identifier: MIT */
/*
 * TLS towards a sub-host: what the config decided (common/config.c) and
 * what the NBD client does with it (common/nbdconn.c).  Whole in the
 * header: a mode and the credentials, nothing that needs libnbd.
 *
 * The modes are libnbd's (nbd_set_tls(3)): OFF sends NBD in clear,
 * PREFER upgrades to TLS when the server offers it and stays in clear
 * otherwise, REQUIRE fails the connect unless TLS is negotiated.  The
 * credentials are a PSK file (nbdkit's format, "username:hexkey" lines)
 * or an X.509 directory (ca-cert.pem, client-cert.pem, client-key.pem as
 * libnbd looks for them); never both.
 */
#ifndef VMEM_COMMON_TLS_H
#define VMEM_COMMON_TLS_H

enum vmem_tls_mode {
	VMEM_TLS_UNSET = 0,	/* not written: decided by the address */
	VMEM_TLS_OFF,
	VMEM_TLS_PREFER,
	VMEM_TLS_REQUIRE,
};

struct vmem_tls {
	enum vmem_tls_mode mode;	/* never UNSET once resolved */
	const char *psk_file;		/* NULL, or an absolute path */
	const char *certificates;	/* NULL, or an absolute path */
	const char *username;		/* PSK identity; NULL: the URI's,
					 * else the login name (libnbd) */
};

static inline const char *vmem_tls_mode_name(enum vmem_tls_mode m)
{
	return m == VMEM_TLS_OFF ? "off" : m == VMEM_TLS_PREFER ? "prefer" :
	       m == VMEM_TLS_REQUIRE ? "require" : "unset";
}

#endif
