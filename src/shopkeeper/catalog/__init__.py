"""The product catalog: products, stock and price changes (catalog events), per-product
statistics kept by the pipeline, and the admin API over them."""
