//! Quickbeam's runtime: code memory, VMContext, memories, tables, globals, traps
