"""The Train page: the config form, the grid sweep and study forms, the live panel and the workers panel."""
