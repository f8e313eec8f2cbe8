// Package plan turns desired virtual services and what a backend observed in
// the kernel into an ordered list of operations. It is a pure function: the
// same inputs always give the same plan, and a plan applied to the observed
// state yields the desired state, so re-planning afterwards gives nothing to
// do (idempotence).
//
// Rules:
//   - A service that is observed but neither desired nor Owned is foreign
//     (someone else's IPVS service) and is never touched.
//   - A desired service that exists but is not owned is adopted: updated in
//     place to the desired state.
//   - Operations come in an order that never leaves a changed service
//     without servers it is about to get: create services, update
//     services, create real servers, update real servers, delete real
//     servers, delete services. Within each group, keys are sorted.
package plan
