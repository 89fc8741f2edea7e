// Package envelope encrypts secrets at rest with envelope encryption: every value gets its own data key
// (AES-256-GCM), and the data key is wrapped by a key-encryption key named by a KMS-style URL. Its Codec encrypts
// Temporal payloads under the same key-encryption key (codec.go).
//
// The key URL schemes compiled in are base64key:// (a key in the URL, for development), awskms:// and gcpkms://.
package envelope

import (
	"context"
	"crypto/aes"
	"crypto/cipher"
	"crypto/rand"
	"encoding/base64"
	"encoding/binary"
	"errors"
	"fmt"

	"gocloud.dev/secrets"
	_ "gocloud.dev/secrets/awskms" // awskms:// key URLs
	_ "gocloud.dev/secrets/gcpkms" // gcpkms:// key URLs
	_ "gocloud.dev/secrets/localsecrets"
)

// version is the first byte of every ciphertext, so the format can change without ambiguity.
const version = 1

// Keeper encrypts values under one key-encryption key and decrypts them under it or under the keys it replaced.
type Keeper struct {
	kek *secrets.Keeper
	// previous are key-encryption keys rotated out: they only unwrap data keys they wrapped before.
	previous []*secrets.Keeper
}

// Open opens the key-encryption key named by keyURL, and the keys it replaced (previous, newest first), which still
// decrypt what they encrypted: rotating the key is setting a new keyURL and listing the old one in previous until
// everything sealed under it is gone or re-sealed.
func Open(ctx context.Context, keyURL string, previous ...string) (*Keeper, error) {
	if keyURL == "" {
		return nil, errors.New("open secrets keeper: no key URL configured")
	}
	k := &Keeper{}
	for i, u := range append([]string{keyURL}, previous...) {
		kek, err := secrets.OpenKeeper(ctx, u)
		if err != nil {
			_ = k.Close()
			// The URL may embed key material (base64key://), so never echo it.
			if i > 0 {
				return nil, fmt.Errorf("open previous secrets key %d: %w", i, redact(err, u))
			}
			return nil, fmt.Errorf("open secrets keeper: %w", redact(err, u))
		}
		if i == 0 {
			k.kek = kek
		} else {
			k.previous = append(k.previous, kek)
		}
	}
	return k, nil
}

// unwrap opens a data key wrapped by the current key-encryption key or one it replaced.
func (k *Keeper) unwrap(ctx context.Context, wrapped []byte) ([]byte, error) {
	dek, err := k.kek.Decrypt(ctx, wrapped)
	for _, old := range k.previous {
		if err == nil {
			break
		}
		if d, oerr := old.Decrypt(ctx, wrapped); oerr == nil {
			dek, err = d, nil
		}
	}
	if err != nil {
		return nil, fmt.Errorf("unwrap data key: %w", err)
	}
	return dek, nil
}

// NewLocalKeyURL returns a base64key:// URL holding a fresh random 256-bit key, for development.
func NewLocalKeyURL() (string, error) {
	key := make([]byte, 32)
	if _, err := rand.Read(key); err != nil {
		return "", fmt.Errorf("generate local key: %w", err)
	}
	return "base64key://" + base64.URLEncoding.EncodeToString(key), nil
}

// Close releases the key-encryption keys.
func (k *Keeper) Close() error {
	var errs []error
	for _, kek := range append([]*secrets.Keeper{k.kek}, k.previous...) {
		if kek != nil {
			errs = append(errs, kek.Close())
		}
	}
	return errors.Join(errs...)
}

// Encrypt seals plaintext under a fresh data key and returns version | len(wrapped key) | wrapped key | nonce | sealed.
func (k *Keeper) Encrypt(ctx context.Context, plaintext []byte) ([]byte, error) {
	dek := make([]byte, 32)
	if _, err := rand.Read(dek); err != nil {
		return nil, fmt.Errorf("generate data key: %w", err)
	}
	wrapped, err := k.kek.Encrypt(ctx, dek)
	if err != nil {
		return nil, fmt.Errorf("wrap data key: %w", err)
	}
	if len(wrapped) > 0xffff {
		return nil, errors.New("wrap data key: wrapped key too long")
	}
	aead, err := newGCM(dek)
	if err != nil {
		return nil, err
	}
	nonce := make([]byte, aead.NonceSize())
	if _, err := rand.Read(nonce); err != nil {
		return nil, fmt.Errorf("generate nonce: %w", err)
	}
	out := make([]byte, 0, 3+len(wrapped)+len(nonce)+len(plaintext)+aead.Overhead())
	out = append(out, version)
	out = binary.BigEndian.AppendUint16(out, uint16(len(wrapped)))
	out = append(out, wrapped...)
	out = append(out, nonce...)
	// The header is authenticated too, so a swapped wrapped key fails to open.
	return aead.Seal(out, nonce, plaintext, out[:3+len(wrapped)]), nil
}

// Decrypt opens a value sealed by Encrypt.
func (k *Keeper) Decrypt(ctx context.Context, ciphertext []byte) ([]byte, error) {
	if len(ciphertext) < 3 || ciphertext[0] != version {
		return nil, errors.New("decrypt secret: unknown format")
	}
	n := int(binary.BigEndian.Uint16(ciphertext[1:3]))
	if len(ciphertext) < 3+n {
		return nil, errors.New("decrypt secret: truncated")
	}
	header, rest := ciphertext[:3+n], ciphertext[3+n:]
	dek, err := k.unwrap(ctx, header[3:])
	if err != nil {
		return nil, err
	}
	aead, err := newGCM(dek)
	if err != nil {
		return nil, err
	}
	if len(rest) < aead.NonceSize() {
		return nil, errors.New("decrypt secret: truncated")
	}
	plain, err := aead.Open(nil, rest[:aead.NonceSize()], rest[aead.NonceSize():], header)
	if err != nil {
		return nil, fmt.Errorf("decrypt secret: %w", err)
	}
	return plain, nil
}

// Last4 returns the last four characters of a secret preceded by an ellipsis: the only form shown in logs and
// responses.
func Last4(secret string) string {
	r := []rune(secret)
	if len(r) <= 4 {
		return "…" // too short to show any of it safely
	}
	return "…" + string(r[len(r)-4:])
}

func newGCM(key []byte) (cipher.AEAD, error) {
	block, err := aes.NewCipher(key)
	if err != nil {
		return nil, fmt.Errorf("create cipher: %w", err)
	}
	return cipher.NewGCM(block)
}

type redactedError struct{ msg string }

func (e redactedError) Error() string { return e.msg }

func redact(err error, keyURL string) error {
	scheme := keyURL
	for i := range keyURL {
		if keyURL[i] == ':' {
			scheme = keyURL[:i]
			break
		}
	}
	return redactedError{msg: fmt.Sprintf("key URL with scheme %q rejected", scheme)}
}
