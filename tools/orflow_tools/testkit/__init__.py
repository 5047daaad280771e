"""What the tests, the benchmark and `orflow up` share: ports, fresh databases, child stacks, invariants."""
