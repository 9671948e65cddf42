"""Back-office services: the business rules behind the views, commands and jobs."""
