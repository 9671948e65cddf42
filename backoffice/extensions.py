"""Extensions of the back-office app, created unbound and attached in the factory."""

from flask_login import LoginManager
from flask_migrate import Migrate

from backoffice.models import Base
from core.db import Database

db = Database("BACKOFFICE_DATABASE_URL", Base.metadata)
login_manager = LoginManager()
migrate = Migrate()
