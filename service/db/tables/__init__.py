"""Every table module, imported so that ``metadata`` knows the whole schema."""

from service.db.tables import admins as admins
from service.db.tables import ads as ads
from service.db.tables import consent as consent
from service.db.tables import crm as crm
from service.db.tables import flows as flows
from service.db.tables import foundation as foundation
from service.db.tables import images as images
from service.db.tables import jobs as jobs
from service.db.tables import tracking as tracking
