//! Rate limits and token budgets.
