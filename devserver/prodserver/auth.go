package prodserver

import (
	"go.temporal.io/server/common/authorization"
)

// Access says which client certificate (by common name) holds which role.
// Roles follow Temporal's own model (authorization.Role): the server's
// default authorizer allows a call when the caller's role in the call's
// scope (the cluster, or the target namespace) reaches what the API needs
// (reader for read-only calls, writer for the rest of the workflow
// service, admin for namespace and search-attribute administration).
type Access struct {
	// Admins may do everything, on every namespace: register namespaces,
	// add search attributes.
	Admins []string
	// Writers may run workflows and workers in Namespace, and read its
	// search attributes, but call no admin API (so no AddSearchAttributes).
	Writers   []string
	Namespace string
}

// cnClaimMapper maps the verified client certificate's common name to
// claims. The TLS layer has already checked the certificate against the
// CA (RequireClientAuth); an unknown name gets no role, so every call but
// the health checks is denied.
type cnClaimMapper struct{ access Access }

var _ authorization.ClaimMapper = cnClaimMapper{}

func (m cnClaimMapper) GetClaims(info *authorization.AuthInfo) (*authorization.Claims, error) {
	claims := &authorization.Claims{AuthType: "mtls"}
	if info == nil || info.TLSSubject == nil {
		return claims, nil
	}
	cn := info.TLSSubject.CommonName
	claims.Subject = cn
	if cn == SystemWorkerCN {
		// The server's own system worker (scheduler, batcher, ...).
		claims.System = authorization.RoleAdmin
		return claims, nil
	}
	for _, a := range m.access.Admins {
		if cn == a {
			claims.System = authorization.RoleAdmin
			return claims, nil
		}
	}
	for _, w := range m.access.Writers {
		if cn == w {
			claims.Namespaces = map[string]authorization.Role{m.access.Namespace: authorization.RoleWriter}
			return claims, nil
		}
	}
	return claims, nil
}
