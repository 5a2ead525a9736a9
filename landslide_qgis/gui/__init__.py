"""The "Landslide detection" dock panel, the QgsTask it runs, and how results are shown."""
