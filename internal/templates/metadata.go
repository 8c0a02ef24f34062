package templates

import (
	"encoding/xml"
	"fmt"
)

// MetadataNamespace is the XML namespace of the element hpcvm writes into the
// <metadata> of every domain it defines. Its presence, naming the cluster, is
// the proof of ownership that destroy requires before deleting a domain.
const MetadataNamespace = "https://hpcvm.dev/xmlns/cluster/1"

// Owner is the content of that element. Its XML name carries no namespace
// because libvirt hands the element back without one: the namespace is how
// the caller asked libvirt for it (virDomainGetMetadata with our URI).
type Owner struct {
	XMLName xml.Name `xml:"cluster"`
	Cluster string   `xml:"name,attr"`
	VM      string   `xml:"vm,attr"`
	Role    string   `xml:"role,attr"`
	Host    string   `xml:"host,attr"`
}

// ownerXML renders the element with a prefix, as libvirt stores metadata.
func ownerXML(o Owner) string {
	return fmt.Sprintf(`<hpcvm:cluster xmlns:hpcvm=%q name=%q vm=%q role=%q host=%q/>`,
		MetadataNamespace, xmlAttr(o.Cluster), xmlAttr(o.VM), xmlAttr(o.Role), xmlAttr(o.Host))
}

// ParseOwner reads the element back from the XML libvirt returns for it.
func ParseOwner(metadata string) (Owner, error) {
	var o Owner
	if err := xml.Unmarshal([]byte(metadata), &o); err != nil {
		return Owner{}, fmt.Errorf("hpcvm metadata is not readable: %w", err)
	}
	if o.Cluster == "" {
		return Owner{}, fmt.Errorf("hpcvm metadata names no cluster: %s", metadata)
	}
	return o, nil
}

// xmlAttr refuses nothing (the plan already validated names) but makes sure
// that, should a value ever carry a quote, it cannot end the attribute.
func xmlAttr(s string) string {
	var b []byte
	for i := 0; i < len(s); i++ {
		switch s[i] {
		case '"', '<', '>', '&', '\'':
			b = append(b, '_')
		default:
			b = append(b, s[i])
		}
	}
	return string(b)
}
