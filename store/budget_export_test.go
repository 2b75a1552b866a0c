package store

import "context"

// Hooks for the transfer budget tests of package store_test.

// SetTransferBudget replaces the process-wide transfer budget with one of
// size bytes and returns the function that restores it.
func SetTransferBudget(size int64) (restore func()) {
	old := transfers
	transfers = newMemBudget(size)
	return func() { transfers = old }
}

// TransfersWaiting is how many workers wait for the transfer budget now.
func TransfersWaiting() int64 { return transfers.waiting.Load() }

// AcquireTransfers takes n bytes of the transfer budget.
func AcquireTransfers(ctx context.Context, n int64) (func(), error) { return transfers.acquire(ctx, n) }

// ObjectCost is what a worker holds from the budget for an object of n
// content bytes.
func ObjectCost(n int64) int64 { return objectCost(n) }
