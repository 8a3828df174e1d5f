"""Moving records between the store and files: import and export."""

from tutelage.interchange.exporting import ExportReport, export_project
from tutelage.interchange.importing import ImportReport, import_file

__all__ = ["ExportReport", "ImportReport", "export_project", "import_file"]
