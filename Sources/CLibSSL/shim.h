#include <openssl/ssl.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <openssl/rand.h>
#include <openssl/x509v3.h>

/* tls-server-end-point channel binding data (RFC 5929): the certificate's DER digested with the hash of
 * its signature algorithm, SHA-256 in place of MD5 and SHA-1. Writes at most EVP_MAX_MD_SIZE bytes;
 * returns their number, 0 when the algorithm names no usable hash (Ed25519, for one). A C helper
 * because EVP_get_digestbynid is a macro Swift cannot import. */
static inline int pgsplit_certificate_end_point_hash(X509 *certificate, unsigned char *out) {
    int digest_nid = 0;
    if (certificate == NULL || !OBJ_find_sigid_algs(X509_get_signature_nid(certificate), &digest_nid, NULL)) {
        return 0;
    }
    const EVP_MD *digest = (digest_nid == NID_md5 || digest_nid == NID_sha1)
        ? EVP_sha256() : EVP_get_digestbyname(OBJ_nid2sn(digest_nid));
    unsigned int length = 0;
    if (digest == NULL || X509_digest(certificate, digest, out, &length) != 1) {
        return 0;
    }
    return (int)length;
}
