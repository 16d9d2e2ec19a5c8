"""Read-side queries across the whole population: KPIs for the dashboard, customer lists."""
