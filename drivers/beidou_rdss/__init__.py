"""BeiDou RDSS short-message terminal (2.1 and BDS-3 sentence dialects): texts, team positions, beam power, RNSS fix."""
