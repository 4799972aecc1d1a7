"""python-dbusmock template: the stock ``bluez5`` mock plus a way to make devices advertise like BlueZ does.

Loaded by ``python -m dbusmock --template <this file>`` (a separate process with dbus-python). The stock
template declares ``ServiceData``/``ManufacturerData`` with types bleak cannot read (bleak needs ``a{sv}``
and ``a{qv}`` dicts of byte arrays), and has no way to simulate an advertisement. ``Advertise`` creates
the device with the right types and announces it with ``InterfacesAdded`` (what BlueZ does when a device
is first seen during discovery), or, for a known device, emits ``PropertiesChanged`` on ``Device1`` with
the new RSSI and data (what BlueZ does for each further advertisement).
"""

# ruff: noqa: F403
from __future__ import annotations

import dbus
from dbusmock import mockobject
from dbusmock.templates import bluez5
from dbusmock.templates.bluez5 import *

BUS_NAME = bluez5.BUS_NAME
MAIN_OBJ = bluez5.MAIN_OBJ
IS_OBJECT_MANAGER = True
SYSTEM_BUS = True


def load(mock, parameters):
    bluez5.load(mock, parameters)


def _service_data(service_data):
    return dbus.Dictionary(
        {str(uuid): dbus.Array([dbus.Byte(b) for b in value], signature="y") for uuid, value in service_data.items()},
        signature="sv")


def _manufacturer_data(manufacturer_data):
    return dbus.Dictionary(
        {dbus.UInt16(company): dbus.Array([dbus.Byte(b) for b in value], signature="y")
         for company, value in manufacturer_data.items()},
        signature="qv")


@dbus.service.method(bluez5.BLUEZ_MOCK_IFACE, in_signature="ssnsa{say}a{qay}", out_signature="s")
def Advertise(self, adapter_name, address, rssi, name, service_data, manufacturer_data):
    """One advertisement from ``address`` heard by adapter ``adapter_name``. Returns the device path."""
    adapter_path = "/org/bluez/" + adapter_name
    if adapter_path not in mockobject.objects:
        raise dbus.exceptions.DBusException(f"Adapter {adapter_name} does not exist.",
                                            name=bluez5.BLUEZ_MOCK_IFACE + ".NoSuchAdapter")
    path = adapter_path + "/dev_" + address.replace(":", "_").upper()
    changed = {
        "RSSI": dbus.Int16(rssi),
        "ServiceData": _service_data(service_data),
        "ManufacturerData": _manufacturer_data(manufacturer_data),
    }
    device = mockobject.objects.get(path)
    if device is None:
        properties = {
            "Address": dbus.String(address),
            "AddressType": dbus.String("public"),
            "Alias": dbus.String(name or address.replace(":", "-")),
            "Adapter": dbus.ObjectPath(adapter_path),
            "Paired": dbus.Boolean(False),
            "Connected": dbus.Boolean(False),
            "Trusted": dbus.Boolean(False),
            "Blocked": dbus.Boolean(False),
            "LegacyPairing": dbus.Boolean(False),
            "ServicesResolved": dbus.Boolean(False),
            "UUIDs": dbus.Array([str(u) for u in service_data], signature="s"),
            **changed,
        }
        if name:
            properties["Name"] = dbus.String(name)
        self.AddObject(path, bluez5.DEVICE_IFACE, properties, [])
        mockobject.objects["/"].EmitSignal(
            bluez5.OBJECT_MANAGER_IFACE, "InterfacesAdded", "oa{sa{sv}}",
            [dbus.ObjectPath(path), {bluez5.DEVICE_IFACE: properties}])
        return path
    device.props[bluez5.DEVICE_IFACE].update(changed)
    device.EmitSignal(dbus.PROPERTIES_IFACE, "PropertiesChanged", "sa{sv}as",
                      [bluez5.DEVICE_IFACE, changed, dbus.Array([], signature="s")])
    return path
