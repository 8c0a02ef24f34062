// Package templates builds the XML of every libvirt object a cluster owns
// from its plan, as typed libvirtxml values rather than text with holes, so a
// name can never break out of its element. Golden files in testdata show a
// reviewer exactly what libvirt receives.
package templates
