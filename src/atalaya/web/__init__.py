"""The web application: the map, the leads, a lead's page, served by `atalaya serve`."""
