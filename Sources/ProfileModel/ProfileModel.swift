// Profile-type IDs, label sets, selectors, stack and symbol tables, batches.
