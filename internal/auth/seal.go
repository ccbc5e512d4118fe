package auth

import (
	"crypto/aes"
	"crypto/cipher"
	"crypto/rand"
	"errors"

	"github.com/google/uuid"
)

// sealer encrypts the current refresh token of a session for the grace
// window after a rotation.
//
// Why store it at all: a phone that sends a refresh, loses the answer and
// retries must get the pair it missed, not a reuse alarm. The server keeps
// only hashes of refresh tokens, so it cannot rebuild that token; deriving
// child tokens from their parent would make a single leaked token (plus
// the key) yield the whole future chain. Sealing the one current token
// with AES-GCM under a key derived from SECRET_KEY keeps the database alone
// useless to a reader, binds the ciphertext to its session and token hash,
// and is overwritten at the next rotation and cleared on revocation.
type sealer struct {
	aeads []cipher.AEAD // current key first, then the previous one
}

func newSealer(keys ...[]byte) (*sealer, error) {
	s := &sealer{}
	for _, k := range keys {
		if len(k) == 0 {
			continue
		}
		block, err := aes.NewCipher(k)
		if err != nil {
			return nil, err
		}
		aead, err := cipher.NewGCM(block)
		if err != nil {
			return nil, err
		}
		s.aeads = append(s.aeads, aead)
	}
	if len(s.aeads) == 0 {
		return nil, errors.New("auth: no sealing key")
	}
	return s, nil
}

func sealAAD(sessionID uuid.UUID, tokenHash []byte) []byte {
	return append(sessionID[:], tokenHash...)
}

// seal returns nonce || ciphertext of plain.
func (s *sealer) seal(sessionID uuid.UUID, tokenHash []byte, plain string) []byte {
	aead := s.aeads[0]
	nonce := make([]byte, aead.NonceSize(), aead.NonceSize()+len(plain)+aead.Overhead())
	_, _ = rand.Read(nonce)
	return aead.Seal(nonce, nonce, []byte(plain), sealAAD(sessionID, tokenHash))
}

// open reverses seal, trying the previous key after the current one so a
// SECRET_KEY rotation inside a grace window does not lose the pair.
func (s *sealer) open(sessionID uuid.UUID, tokenHash, sealed []byte) (string, error) {
	aad := sealAAD(sessionID, tokenHash)
	for _, aead := range s.aeads {
		n := aead.NonceSize()
		if len(sealed) < n {
			break
		}
		plain, err := aead.Open(nil, sealed[:n], sealed[n:], aad)
		if err == nil {
			return string(plain), nil
		}
	}
	return "", errors.New("auth: sealed token does not open")
}
