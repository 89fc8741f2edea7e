package postgres_test

import (
	"fmt"
	"strings"
	"sync"
	"testing"

	"github.com/google/uuid"

	"github.com/linsync/linsync"
	"github.com/linsync/linsync/linsynctest"
)

// BenchmarkPutInboxBatch writes webhook-sized inbox items in groups, four writers at once as the API's group writer
// does; ns/op is per item, so it shows what a larger group saves per acknowledgement.
func BenchmarkPutInboxBatch(b *testing.B) {
	db := linsynctest.DB(b)
	ws, err := db.CreateWorkspace(b.Context(), "bench", "Bench")
	if err != nil {
		b.Fatal(err)
	}
	pad := strings.Repeat("A signed webhook body about the size Linear sends. ", 20)
	for _, group := range []int{1, 4, 16, 64} {
		b.Run(fmt.Sprintf("group=%d", group), func(b *testing.B) {
			const writers = 4
			next := make(chan int, writers)
			var wg sync.WaitGroup
			for range writers {
				wg.Go(func() {
					for n := range next {
						items := make([]*linsync.InboxItem, n)
						for i := range items {
							items[i] = deliveryItem(ws.ID, fmt.Sprintf(`{"n":%q,"d":%q}`, uuid.NewString(), pad))
						}
						if _, err := db.PutInboxBatch(b.Context(), items); err != nil {
							b.Error(err)
						}
					}
				})
			}
			for left := b.N; left > 0; left -= group {
				next <- min(group, left)
			}
			close(next)
			wg.Wait()
		})
	}
}
