"""Pure shared types: money, quantities, utilities, clock and domain errors."""
