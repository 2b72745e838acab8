//! snapseal-chaos: runs snapseal-cluster nodes as real processes under faults and checks what
//! clients saw (see docs/TESTING.md, "A cluster under faults").

mod check;

fn main() {}
