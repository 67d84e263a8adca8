"""Studies (grids of runs -> evaluation -> reports) and human evaluation: `spec` (study configs),
`runner` (`genvision study`), `analysis` (distributions, Holm), `report` (`genvision report`,
HTML), `humaneval` and `webapp` (`genvision humaneval`)."""
