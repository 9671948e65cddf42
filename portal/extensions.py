"""Extensions of the portal app, created unbound and attached in the factory."""

from flask_login import LoginManager
from flask_migrate import Migrate

from core.db import Database
from portal.models import Base

db = Database("PORTAL_DATABASE_URL", Base.metadata)
login_manager = LoginManager()
migrate = Migrate()
