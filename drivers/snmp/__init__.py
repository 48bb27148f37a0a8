"""SNMP driver: MIB-II and vendor OIDs of network equipment (LTE routers, mesh radios, UPSes)."""
