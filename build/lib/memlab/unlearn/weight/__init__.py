"""Weight-level unlearning methods (unlearning spec §7): Greedy, Durable, Durable Aggregate, SOU,
Subnet, BalancedSubnet — one file per family, each registered under its YAML name."""
