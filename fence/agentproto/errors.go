package agentproto

import "errors"

// ErrBadArg is returned by EncodeArgs and ParseArgs for a name or value that
// the line protocol cannot carry (empty name, "=" or a newline in a name, a
// newline or NUL in a value).
var ErrBadArg = errors.New("fence agent argument cannot be encoded")

// ErrBadMetadata is returned by ParseMetadata (and Metadata.Validate) when the
// XML is not a fence-agents metadata document or breaks its rules.
var ErrBadMetadata = errors.New("invalid fence agent metadata")
