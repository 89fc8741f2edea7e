package envelope

import (
	"context"
	"crypto/cipher"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"sync"
	"time"

	commonpb "go.temporal.io/api/common/v1"
	"google.golang.org/protobuf/proto"
)

// Metadata of an encrypted payload. The Temporal Web UI shows the encoding; the key id and the wrapped data key let
// any process holding the key-encryption key (or one it replaced) open the payload, in any later deploy.
const (
	// CodecEncoding marks a payload this codec sealed.
	CodecEncoding = "binary/encrypted"
	// MetaKeyID names the data key that sealed the payload: the first 16 bytes of the SHA-256 of its wrapped form, hex.
	MetaKeyID = "encryption-key-id"
	// MetaWrappedKey is the data key, wrapped by the key-encryption key.
	MetaWrappedKey = "encryption-wrapped-key"
)

// A data key seals at most this many payloads, or for at most this long, before the codec makes a new one: far below
// the 2^32 random 96-bit nonces after which AES-GCM's nonce collisions become a concern.
const (
	dataKeyMaxUses = 1 << 28
	dataKeyMaxAge  = 24 * time.Hour
	// openKeysMax bounds the data keys kept unwrapped for decoding; a key not kept is unwrapped again when needed.
	openKeysMax = 1024
)

// Codec is a Temporal PayloadCodec that encrypts every payload (workflow inputs and results, activity arguments,
// signals, memos, and failures when the failure converter encodes them) with AES-256-GCM under a data key wrapped
// by the Keeper's key-encryption key. Unlike Keeper.Encrypt it does not call the KMS per value: a process wraps one
// data key and reuses it (bounded by uses and age), and unwrapped keys are cached for decoding, so the cost per
// payload is one AES-GCM operation. Payloads without CodecEncoding pass through Decode unchanged, so histories
// written before encryption was turned on stay readable.
type Codec struct {
	keeper *Keeper
	now    func() time.Time

	mu      sync.Mutex
	current *dataKey
	open    map[string]*dataKey // by key id
}

type dataKey struct {
	id      string
	wrapped []byte
	aead    cipher.AEAD
	made    time.Time
	uses    int64
}

// NewCodec returns a codec sealing payloads under k's current key-encryption key.
func NewCodec(k *Keeper) *Codec {
	return &Codec{keeper: k, now: time.Now, open: map[string]*dataKey{}}
}

func keyID(wrapped []byte) string {
	sum := sha256.Sum256(wrapped)
	return hex.EncodeToString(sum[:16])
}

// sealingKey returns the data key to seal the next payload with, making (and wrapping) a new one when the current
// one is used up.
func (c *Codec) sealingKey(ctx context.Context) (*dataKey, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if k := c.current; k != nil && k.uses < dataKeyMaxUses && c.now().Sub(k.made) < dataKeyMaxAge {
		k.uses++
		return k, nil
	}
	dek := make([]byte, 32)
	_, _ = rand.Read(dek) // crypto/rand.Read never fails (Go 1.24+)
	wrapped, err := c.keeper.kek.Encrypt(ctx, dek)
	if err != nil {
		return nil, fmt.Errorf("wrap payload data key: %w", err)
	}
	aead, err := newGCM(dek)
	if err != nil {
		return nil, err
	}
	k := &dataKey{id: keyID(wrapped), wrapped: wrapped, aead: aead, made: c.now(), uses: 1}
	c.current = k
	c.remember(k)
	return k, nil
}

// remember keeps k for decoding; c.mu is held.
func (c *Codec) remember(k *dataKey) {
	if len(c.open) >= openKeysMax {
		clear(c.open)
		if c.current != nil {
			c.open[c.current.id] = c.current
		}
	}
	c.open[k.id] = k
}

// openingKey returns the data key named by a payload's metadata, unwrapping it on first use.
func (c *Codec) openingKey(ctx context.Context, id string, wrapped []byte) (*dataKey, error) {
	if keyID(wrapped) != id {
		return nil, errors.New("decode payload: key id does not match its wrapped key")
	}
	c.mu.Lock()
	k, ok := c.open[id]
	c.mu.Unlock()
	if ok {
		return k, nil
	}
	dek, err := c.keeper.unwrap(ctx, wrapped)
	if err != nil {
		return nil, fmt.Errorf("decode payload sealed under key %s: %w", id, err)
	}
	aead, err := newGCM(dek)
	if err != nil {
		return nil, err
	}
	k = &dataKey{id: id, wrapped: wrapped, aead: aead}
	c.mu.Lock()
	c.remember(k)
	c.mu.Unlock()
	return k, nil
}

// Encode seals each payload, metadata and data together, into a payload of CodecEncoding.
func (c *Codec) Encode(payloads []*commonpb.Payload) ([]*commonpb.Payload, error) {
	ctx := context.Background()
	out := make([]*commonpb.Payload, len(payloads))
	for i, p := range payloads {
		plain, err := proto.Marshal(p)
		if err != nil {
			return nil, fmt.Errorf("encode payload: %w", err)
		}
		k, err := c.sealingKey(ctx)
		if err != nil {
			return nil, err
		}
		sealed := make([]byte, 12, 12+len(plain)+k.aead.Overhead())
		_, _ = rand.Read(sealed)
		// The key id is authenticated with the data, so a payload cannot be moved under another key's name.
		sealed = k.aead.Seal(sealed, sealed[:12], plain, []byte(k.id))
		out[i] = &commonpb.Payload{
			Metadata: map[string][]byte{"encoding": []byte(CodecEncoding), MetaKeyID: []byte(k.id), MetaWrappedKey: k.wrapped},
			Data:     sealed,
		}
	}
	return out, nil
}

// Decode opens payloads this codec (or any holding the same key-encryption key, current or previous) sealed, and
// passes others through.
func (c *Codec) Decode(payloads []*commonpb.Payload) ([]*commonpb.Payload, error) {
	ctx := context.Background()
	out := make([]*commonpb.Payload, len(payloads))
	for i, p := range payloads {
		if string(p.GetMetadata()["encoding"]) != CodecEncoding {
			out[i] = p
			continue
		}
		id := string(p.Metadata[MetaKeyID])
		k, err := c.openingKey(ctx, id, p.Metadata[MetaWrappedKey])
		if err != nil {
			return nil, err
		}
		if len(p.Data) < 12 {
			return nil, errors.New("decode payload: truncated")
		}
		plain, err := k.aead.Open(nil, p.Data[:12], p.Data[12:], []byte(id))
		if err != nil {
			return nil, fmt.Errorf("decode payload sealed under key %s: %w", id, err)
		}
		var orig commonpb.Payload
		if err := proto.Unmarshal(plain, &orig); err != nil {
			return nil, fmt.Errorf("decode payload: %w", err)
		}
		out[i] = &orig
	}
	return out, nil
}
